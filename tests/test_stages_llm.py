"""The four stages driven by a scripted fake model over the real wire format: named changes are never repeated
(the engine asks again when the model repeats one), ablations expand the stage's starting node, plots go to a
vision model whose verdict decides the stage-2 stability check."""
import json
import os
import re
import subprocess

import pyarrow.parquet as pq
import pytest

from tests.conftest import NO_RAY, REPO, launch_cmd
from tests.fake_llm_server import FakeLLMServer

pytestmark = pytest.mark.slow

# Each entry: the name the model gives and the constant it edits. The model repeats itself on purpose.
TUNING = [("learning_rate", "LEARNING_RATE = 0.5"), ("learning_rate", "LEARNING_RATE = 0.3"),
          ("num_units", "NUM_UNITS = 16"), ("num_units", "NUM_UNITS = 4"), ("learning_rate", "LEARNING_RATE = 0.2"),
          ("sleep_s", "SLEEP_S = 0.01")]
ABLATIONS = [("single_unit", "NUM_UNITS = 1"), ("single_unit", "NUM_UNITS = 2"), ("no_learning", "LEARNING_RATE = 0.0"),
             ("no_learning", "LEARNING_RATE = 0.0"), ("huge_units", "NUM_UNITS = 512")]

AGENDA = ["LEARNING_RATE = 0.03", "LEARNING_RATE = 0.01"]


def text_of(body):
    parts = []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [c.get("text", "") for c in content if isinstance(c, dict)]
    return "\n".join(parts)


def stage_model(valid_plots):
    calls = {"tuning": 0, "ablations": 0, "other": 0}

    def program(text, edit):
        code = text.split("```python\n", 1)[1].split("```", 1)[0]
        name = edit.split(" = ")[0]
        return re.sub(rf"^{name} = .*$", edit, code, count=1, flags=re.MULTILINE)

    def respond(path, body):
        text = text_of(body)
        if body.get("tools"):
            if body["tools"][0]["function"]["name"] == "choose":  # the end-of-stage tie-break
                step = re.search(r"- step (\d+): [^\n]*plan: Set LEARNING_RATE = 0.01", text).group(1)
                return {"tool": {"name": "choose", "input": {"step": int(step), "reason": "the smaller rate"}}}
            if body["tools"][0]["function"]["name"] == "critique":
                return {"tool": {"name": "critique", "input": {
                    "plots": [{"file": "val_loss.png", "analysis": "One bar: the validation loss."}],
                    "summary": "A single bar; nothing unstable.", "valid": valid_plots}}}
            return {"tool": {"name": "report", "input": {"is_bug": False, "analysis": "Ran as planned."}}}
        if "Reply with OK." in text:
            return {"text": "OK"}
        first = next(m["content"] for m in body["messages"] if m["role"] == "user")  # the prompt, before re-asks
        for stage, script, label in (("Stage 2 of 4", TUNING, "Hyperparameter"),
                                     ("Stage 4 of 4", ABLATIONS, "Ablation")):
            if stage in first:
                key = "tuning" if script is TUNING else "ablations"
                name, edit = script[calls[key] % len(script)]
                calls[key] += 1
                return {"text": f"{label}: {name}\nSet {edit}.\n```python\n{program(first, edit)}```"}
        # stage 3: two rates equally far from the optimum (0.02), so the two runs tie on the metric
        edit = AGENDA[calls["other"] % 2] if "Stage 3 of 4" in first else "LEARNING_RATE = 0.08"
        calls["other"] += 1
        return {"text": f"Set {edit}.\n```python\n{program(first, edit)}```"}
    return respond


def run_stages(tmp_path, v1_template, valid_plots):
    run_dir = tmp_path / "run"
    with FakeLLMServer(responder=stage_model(valid_plots)) as server:
        res = subprocess.run(launch_cmd(
            "+topic=template", f"topic.path={v1_template}", "topic.metric=val_loss", "topic.direction=minimize",
            f"model.base_url={server.base_url}", "model.name=fake-model", "model.vision=true", "tracking=none",
            "pipeline.phases=[experiments]", NO_RAY,
            "cluster.slots=1", "search.num_drafts=1", "search.debug_prob=0", "search.lookahead=0",
            "stages.initial.max_nodes=3",
            "stages.tuning.max_nodes=3", "stages.agenda.max_nodes=2", "stages.ablations.max_nodes=3",
            f"hydra.run.dir={run_dir}"), cwd=REPO, capture_output=True, text=True, timeout=600,
            env=os.environ | {"OPENAI_API_KEY": "test-key"})
        bodies = [body for _, body, _ in server.requests]
    assert res.returncode == 0, res.stderr[-3000:]
    rows = sorted(pq.read_table(run_dir / "journal").to_pylist(), key=lambda r: r["step"])
    return run_dir, rows, bodies, json.loads((run_dir / "summary.json").read_text())


def test_named_changes_are_never_repeated_and_plots_are_critiqued(tmp_path, v1_template):
    run_dir, rows, bodies, s = run_stages(tmp_path, v1_template, valid_plots=True)
    assert [st["name"] for st in s["stages"]] == ["initial", "tuning", "agenda", "ablations"]
    ran = [r for r in rows if r["killed_reason"] != "proposal"]

    tuning = [r for r in ran if r["stage"] == "tuning" and r["operator"] == "improve"]
    assert [r["change"] for r in tuning] == ["learning_rate", "num_units"]
    # the model repeated itself and was asked again, naming what was taken
    reasks = [b for b in bodies if "'learning_rate' was already tried in this stage" in text_of(b)]
    assert reasks
    # NUM_UNITS = 16 beats the starting node, and the vision model judged its plots valid: stage 2 is complete
    tuning_rec = json.loads((run_dir / "stages" / "tuning" / "summary.json").read_text())
    assert tuning_rec["completed"] and "judged stable" in tuning_rec["why"]

    ablations = [r for r in ran if r["stage"] == "ablations" and r["operator"] == "improve"]
    assert [r["change"] for r in ablations] == ["single_unit", "no_learning", "huge_units"]
    start = json.loads((run_dir / "stages" / "ablations" / "summary.json").read_text())["started_from"]
    assert {r["parent_id"] for r in ablations} == {start["copy_id"]}

    # every node that drew a plot was critiqued: images went to the vision role and the verdict was kept
    assert any(isinstance(m["content"], list) and any(c.get("type") == "image_url" for c in m["content"])
               for b in bodies for m in b["messages"])
    drawn = [r for r in ran if r["plots"] and r["operator"] not in ("copy", "seed")]
    assert drawn and all(r["plots_valid"] is True and "nothing unstable" in r["plot_feedback"] for r in drawn)
    # the verdict feeds later prompts
    assert any("Plot critique (judged valid)" in text_of(b) for b in bodies)
    # the template has no seed parameter: multi-seed evaluation is skipped and says why
    rec = json.loads((run_dir / "stages" / "initial" / "summary.json").read_text())
    assert "no seed parameter" in rec["seeds"]["skipped"]
    # the stage-3 prompt carries the idea's plan goal and the scale-up signal (runs take well under the limit)
    agenda = [text_of(b) for b in bodies if "Stage 3 of 4" in text_of(b)]
    assert agenda and all("Scale up" in t for t in agenda)
    # the two stage-3 runs tie: at the stage's end (only there) the select model chose, and stage 4 starts from it
    agenda_rec = json.loads((run_dir / "stages" / "agenda" / "summary.json").read_text())
    assert "LEARNING_RATE = 0.01" in agenda_rec["best"]["plan"] and "model chose" in agenda_rec["tie_break"]
    assert start["node_id"] == agenda_rec["best"]["node_id"]
    assert sum(1 for b in bodies if b.get("tools") and b["tools"][0]["function"]["name"] == "choose") == 1


def test_plots_judged_not_valid_keep_stage_two_open(tmp_path, v1_template):
    run_dir, rows, bodies, s = run_stages(tmp_path, v1_template, valid_plots=False)
    tuning_rec = json.loads((run_dir / "stages" / "tuning" / "summary.json").read_text())
    assert not tuning_rec["completed"] and tuning_rec["nodes"] == 3 and "budget" in tuning_rec["why"]
    assert s["stages"][1]["completed"] is False
