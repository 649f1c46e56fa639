"""v1 templates that write their parameters inline: the offline proposer finds number literals in calls, tuples
and lists by readable names, skips what is not a hyperparameter, and a template with none still runs its
baseline and ends with the reason."""
import json
import random

import pytest

from search.code_edit import find_tunables, set_values
from search.journal import Journal
from search.node import Node
from search.offline import OfflineProposer, specs_from_code
from search.operators import BaselineFirst, NothingLeft, StageBrief
from tests.conftest import FIXTURES, NO_RAY, launch, one_stage

ODE = (FIXTURES / "v1_ode_template" / "experiment.py").read_text()

INLINE = '''import numpy as np
import torch
from scipy.integrate import odeint

y0 = np.array([3000, 0, 5, 0])
start = [1.5, -2.0]
beta, gamma = 0.3, 0.1
config = {"lr": 0.01, "name": "x"}
np.random.seed(42)
torch.manual_seed(7)
rng = np.random.default_rng(seed=3)
t = np.linspace(0, 160, 161)
x = np.zeros((3, 4)).reshape(4, 3)
w = np.ones(5)
grid = np.full((2, 2), 9)
for i in range(100):
    x[1, 2] += 0.5 * i ** 2
sol = odeint(print, y0, t, args=(0.001, 14, 7))
loss = torch.nn.functional.dropout(x, p=0.25, training=True)
total = sum([1, 2]) + sum([1, 2])
print(sol[-1, 2], 3.5)


def train():
    lr = 0.002
    return torch.optim.SGD([], lr=lr, momentum=0.9, nesterov=False)
'''


def test_literals_in_calls_tuples_and_lists_have_readable_names():
    t = find_tunables(INLINE)
    expect = {"np.array[0][0]": 3000, "np.array[0][2]": 5, "start[0]": 1.5, "start[1]": -2.0, "beta": 0.3,
              "gamma": 0.1, "config['lr']": 0.01, "odeint.args[0]": 0.001, "odeint.args[1]": 14,
              "odeint.args[2]": 7, "torch.nn.functional.dropout.p": 0.25, "lr": 0.002,
              "torch.optim.SGD.momentum": 0.9}
    assert {k: t[k].value for k in expect} == expect
    assert all(t[k].where == "literal" for k in expect)
    # the same call twice: each occurrence named with its line
    assert {k for k in t if k.startswith("sum[0]")} == {"sum[0][0]@L20", "sum[0][1]@L20", "sum[0][0]@L20#2",
                                                       "sum[0][1]@L20#2"}


def test_loop_bounds_indices_shapes_seeds_zeros_and_booleans_are_skipped():
    names = set(find_tunables(INLINE))
    values = {t.value for t in find_tunables(INLINE).values()}
    for skipped in ("range[0]", "np.random.seed[0]", "torch.manual_seed[0]", "np.random.default_rng.seed",
                    "np.zeros[0][0]", "np.linspace[1]", "np.ones[0]", "np.full[0][0]", "np.array[0][1]",
                    "torch.nn.functional.dropout.training", "torch.optim.SGD.nesterov", "print[1]"):
        assert skipped not in names
    assert not values & {42, 100, 160, 161, 9}  # seeds, loop bounds, grids and shapes never appear
    assert 2 not in {t.value for n, t in find_tunables(INLINE).items() if not n.startswith("sum")}  # x[1, 2]


def test_edits_change_exactly_that_literal():
    new = set_values(INLINE, {"odeint.args[0]": 0.002, "np.array[0][2]": 10, "config['lr']": 0.1})
    assert "args=(0.002, 14, 7)" in new and "np.array([3000, 0, 10, 0])" in new and '"lr": 0.1,' in new
    assert find_tunables(new)["odeint.args[1]"].value == 14


def test_the_ode_template_is_tunable_offline():
    specs = specs_from_code(ODE)
    assert set(specs) == {"np.array[0][0]", "np.array[0][2]", "odeint.args[0]", "odeint.args[1]",
                          "odeint.args[2]"}
    assert specs["odeint.args[1]"].integer and not specs["odeint.args[0]"].integer
    p = OfflineProposer(ODE, specs)
    parent = Node(code=ODE, is_buggy=False, metric=1.0)
    prop = p.improve(Journal([parent]), parent, random.Random(0))
    before, after = find_tunables(ODE), find_tunables(prop.code)
    changed = [k for k in before if before[k].value != after[k].value]
    assert changed == [prop.change] and prop.change in specs and prop.change in prop.plan


def test_without_any_tunable_only_the_baseline_is_proposed():
    code = "import json\nprint(json.dumps({'m': len('abc')}))\n"
    assert specs_from_code(code) == {}
    p = BaselineFirst(code).wrap(OfflineProposer(code, {}))
    assert p.draft(Journal(), random.Random(0)).code == code
    with pytest.raises(NothingLeft, match="no tunable hyperparameter"):
        p.draft(Journal(), random.Random(0))
    parent = Node(code=code, is_buggy=False, metric=1.0)
    with pytest.raises(NothingLeft, match="no tunable hyperparameter"):
        p.improve(Journal([parent]), parent, random.Random(0), brief=StageBrief("tuning", change_kind="hyperparameter"))


@pytest.mark.slow
def test_ode_template_offline_through_the_launcher(tmp_path):
    run_dir = tmp_path / "run"
    res = launch("+topic=template", f"topic.path={FIXTURES / 'v1_ode_template'}", "topic.metric=peak_infected_fraction",
                 "topic.direction=minimize", *one_stage(4), "search.num_drafts=2", "tracking=none", NO_RAY,
                 f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "finished" and s["nodes"]["total"] == 4 and s["nodes"]["good"] == 4
    assert s["baseline"] == pytest.approx(0.2312, rel=1e-3)
    nodes = [json.loads((d / "node.json").read_text()) for d in sorted((run_dir / "nodes").iterdir())]
    changed = [n for n in nodes if n["code"] != ODE]
    assert len(changed) == 3
    assert all(any(name in n["plan"] for name in ("odeint.args[", "np.array[0][")) for n in changed)


@pytest.mark.slow
def test_a_template_without_numbers_runs_its_baseline_and_ends_with_the_reason(tmp_path):
    template = tmp_path / "plain"
    template.mkdir()
    (template / "experiment.py").write_text(
        "import argparse\nimport json\nimport os\n\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--out_dir', type=str, required=True)\nargs = parser.parse_args()\n"
        "os.makedirs(args.out_dir, exist_ok=True)\nscore = len('abcdef') / len('abc')\n"
        "with open(os.path.join(args.out_dir, 'final_info.json'), 'w') as f:\n"
        "    json.dump({'toy': {'means': {'score': score}}}, f)\n")
    (template / "prompt.json").write_text(json.dumps({"system": "s", "task_description": "A fixed score."}))
    (template / "seed_ideas.json").write_text(json.dumps([{"Name": "n", "Title": "t", "Experiment": "e"}]))
    run_dir = tmp_path / "run"
    res = launch("+topic=template", f"topic.path={template}", "topic.metric=score", "topic.direction=maximize",
                 *one_stage(3), "tracking=none", NO_RAY, f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "finished" and s["nodes"]["total"] == 1 and s["baseline"] == 2.0
    assert s["best"]["value"] == 2.0
    [stage] = s["stages"]
    assert "no tunable hyperparameter" in stage["why"]
    assert "no tunable hyperparameter" in res.stderr
