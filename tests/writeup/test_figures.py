"""The paper's figure set on a copy of a real finished run (the grokking smoke run, trimmed to its records and
result files): our own figures offline, the checks (blank, duplicate pictures, the limit), resume, and the
model's plotting program in the sandbox: retried with its error, and unable to read the run outside data/."""
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib
import pytest
from omegaconf import OmegaConf
from PIL import Image

from engine import config as config_mod
from engine.config import shipped_llm
from engine.llm.models import ModelSpec
from engine.llm.service import LLM
from engine.phase import PhaseContext
from engine.tracking import NullTracker
from engine.writeup.config import WriteupConfig
from engine.writeup.figures import Figure, make_figures
from engine.writeup.figures.checks import Candidate, blank_reason, check_set, gray
from engine.writeup.figures.data import load_run
from engine.writeup.figures.staging import stage_run
from tests.scripted_model import BASE_URL, ScriptedModel

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SMOKE_RUN = Path(__file__).resolve().parent / "fixtures" / "smoke_run"  # records and run_0 results only
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def copy_run(dest: Path) -> Path:
    shutil.copytree(SMOKE_RUN, dest)
    return dest


@pytest.fixture
def run_dir(tmp_path):
    return copy_run(tmp_path / "run")


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """A run whose figure set was drawn offline with the default settings, and that set: drawn once for the tests
    that only read it (a test that changes the run works on its own copy)."""
    run = copy_run(tmp_path_factory.mktemp("drawn") / "run")
    return run, make_figures(context(run), run / "paper" / "figures")


def context(run: Path, llm=None, **writeup) -> PhaseContext:
    raw = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True)
    cfg = config_mod.build(raw)
    cfg = cfg.with_section("writeup", dataclasses.replace(WriteupConfig.of(cfg), **writeup))
    cfg = dataclasses.replace(cfg, sandbox=dataclasses.replace(cfg.sandbox, use_bwrap="auto"))
    return PhaseContext(run, cfg, llm, NullTracker())


def index_of(run: Path) -> dict:
    return json.loads((run / "paper" / "figures" / "figures.json").read_text())


# -- offline: our own figures ---------------------------------------------------------------------------------
def test_offline_figures_are_real_pngs_with_existing_sources(drawn):
    run_dir, figures = drawn
    assert len(figures) >= 4
    assert all(isinstance(f, Figure) and f.source == "engine" for f in figures)
    assert len({f.label for f in figures}) == len(figures) and all(f.label.startswith("fig:") for f in figures)
    for f in figures:
        assert f.path.startswith("paper/figures/") and f.path.endswith(".png")
        assert blank_reason(gray(run_dir / f.path)) is None, f.path
        assert f.caption and f.data
        assert all((run_dir / d).is_file() for d in f.data), f.data
    keys = {Path(f.path).stem for f in figures}
    assert {"search_progress", "tuning_bars", "ablations_bars"} <= keys
    assert any(k.startswith("best_curves") for k in keys)
    curves = next(f for f in figures if Path(f.path).stem.startswith("best_curves"))
    assert curves.data == ["nodes/0000-76fbfbfa5f89/run_0/curves.json"]  # the copies' source node's results
    index = index_of(run_dir)
    assert [Figure(**f) for f in index["figures"]] == figures
    # every stage kept node 0, so the four seed evaluations are the same runs: one figure, three recorded drops
    seed_drops = [d for d in index["dropped"] if d.get("key", "").startswith("seeds_")]
    assert len(seed_drops) == 3 and all("same seed runs" in d["reason"] for d in seed_drops)
    assert index["model"]["role"] is None


def test_resumed_call_reuses_the_set_without_drawing(drawn, tmp_path):
    run_dir, first = shutil.copytree(drawn[0], tmp_path / "run"), drawn[1]  # a run whose set was drawn
    out = run_dir / "paper" / "figures"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    again = make_figures(context(run_dir), out)
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()} == stamps
    (run_dir / first[0].path).unlink()  # a missing file: the set is drawn again
    assert make_figures(context(run_dir), out) == first
    assert (run_dir / first[0].path).is_file()


def test_max_figures_caps_the_set(run_dir):
    figures = make_figures(context(run_dir, max_figures=3), run_dir / "paper" / "figures")
    assert len(figures) == 3
    over = [d for d in index_of(run_dir)["dropped"] if "over the limit of 3" in d["reason"]]
    assert len(over) >= 2
    assert all((run_dir / d["path"]).is_file() and "/dropped/" in d["path"] for d in over)
    assert len(list((run_dir / "paper" / "figures").glob("*.png"))) == 3


# -- the checks --------------------------------------------------------------------------------------------
def test_checks_drop_blank_and_duplicate_pictures_but_keep_similar_plots(drawn, tmp_path):
    figs = drawn[0] / "paper" / "figures"
    original = figs / "search_progress.png"
    planted = tmp_path / "planted"
    planted.mkdir()
    shutil.copyfile(original, planted / "renamed.png")  # the same image under another name
    Image.open(original).convert("RGB").save(planted / "lossy.jpg", quality=85)
    Image.open(planted / "lossy.jpg").save(planted / "reencoded.png")  # re-encoded through JPEG
    img = Image.open(original)
    img.resize((int(img.width * 0.9), int(img.height * 0.9)), Image.Resampling.LANCZOS).save(planted / "smaller.png")
    fig = plt.figure()
    fig.savefig(planted / "blank.png")
    plt.close(fig)
    fig = plt.figure()
    fig.suptitle("only a title")
    fig.savefig(planted / "title_only.png")
    plt.close(fig)
    files = [original, planted / "renamed.png", planted / "reencoded.png", planted / "smaller.png",
             planted / "blank.png", planted / "title_only.png",
             figs / "tuning_bars.png", figs / "ablations_bars.png"]  # same layout and values, other labels
    kept, rejected = check_set([Candidate(f, i, f.name) for i, f in enumerate(files)], max_figures=12)
    assert [c.key for c in kept] == ["search_progress.png", "tuning_bars.png", "ablations_bars.png"]
    reasons = {r.key: r.reason for r in rejected}
    for name in ("renamed.png", "reencoded.png", "smaller.png"):
        assert reasons[name] == "duplicate of search_progress.png"
    assert reasons["blank.png"].startswith("blank") and reasons["title_only.png"].startswith("blank")
    kept, rejected = check_set([Candidate(f, i, f.name) for i, f in enumerate(files)], max_figures=2)
    assert [c.key for c in kept] == ["search_progress.png", "tuning_bars.png"]
    assert {r.key: r.reason for r in rejected}["ablations_bars.png"] == "over the limit of 2 figures"


def test_data_folder_holds_result_files_only(run_dir):
    staging = stage_run(load_run(run_dir))
    sources = set(staging.files.values())
    assert "tree.json" in sources and "stages/ablations/summary.json" in sources
    assert "nodes/0000-76fbfbfa5f89/run_0/curves.json" in sources
    assert not {"config.yaml", "summary.json", "idea.json"} & sources
    assert all(s in ("tree.json",) or s.startswith("stages/") or "/run_0/" in s for s in sources)
    assert not any("6b6f9c1845f4" in s for s in sources)  # a copy: its source node's folder holds the results
    assert all(d == f"data/{s}" for d, s in staging.files.items())


# -- the model's plotting program ---------------------------------------------------------------------------
BROKEN = """
import json
index = json.load(open("data/index.json"))
best = index["stages"][-1]["best_dir"]
curves = json.load(open(best + "/run_0/curves.json"))
print(curves["no_such_dataset"])
"""

WORKS = """
import json, os, shutil
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

index = json.load(open("data/index.json"))
stage = index["stages"][-1]
curves_file = stage["best_dir"] + "/run_0/curves.json"
curves = json.load(open(curves_file))
os.makedirs("figures", exist_ok=True)
fig, ax = plt.subplots()
for ds, runs in curves.items():
    ax.plot(runs[0]["step"], runs[0]["val_loss"], label=ds + " validation")
    ax.plot(runs[0]["step"], runs[0]["train_loss"], label=ds + " training")
ax.set_xlabel("step"); ax.set_ylabel("loss"); ax.set_title("Loss of the best node"); ax.legend()
fig.savefig("figures/loss.png"); plt.close(fig)
changes = [c for c in stage["changes"] if c["value"] is not None]
fig, ax = plt.subplots()
ax.bar([c["change"] for c in changes], [c["value"] for c in changes])
ax.axhline(stage["start_value"], color="k", linestyle="--")
ax.set_ylabel(index["primary_metric"]["name"]); ax.set_title("Ablations")
fig.savefig("figures/ablations.png"); plt.close(fig)
shutil.copyfile("figures/loss.png", "figures/loss_again.png")
Image.open("figures/loss.png").convert("RGB").save("jpeg.jpg", quality=85)
Image.open("jpeg.jpg").save("figures/loss_reencoded.png")
fig = plt.figure(); fig.savefig("figures/empty.png"); plt.close(fig)
summary = "data/stages/" + stage["name"] + "/summary.json"
entries = [("loss.png", "Training and validation loss of the best node.", [curves_file]),
           ("ablations.png", "Primary metric of each ablation.", [summary]),
           ("loss_again.png", "Loss again.", [curves_file]),
           ("loss_reencoded.png", "Loss, re-encoded.", [curves_file]),
           ("empty.png", "Nothing.", [])]
json.dump([{"file": f, "caption": c, "data": d} for f, c, d in entries], open("figures/figures.json", "w"))
"""

LEAK = """
import json, os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
secret = open(os.path.join(RUN_DIR, "config.yaml")).read()  # outside data/: must not be readable
os.makedirs("figures", exist_ok=True)
fig, ax = plt.subplots(); ax.plot([0, 1], [0, 1]); ax.set_title(secret[:20]); fig.savefig("figures/leak.png")
json.dump([{"file": "leak.png", "caption": "leaked", "data": []}], open("figures/figures.json", "w"))
"""


def scripted(model: ScriptedModel, programs: list[str]) -> LLM:
    model.script = [{"text": f"Here is the program.\n```python\n{p}\n```"} for p in programs]
    spec = ModelSpec(name="fake-model", base_url=BASE_URL)
    return LLM({"code": spec}, shipped_llm(max_retries=0, timeout_s=20), {"OPENAI_API_KEY": "test-key"},
               providers=model.providers("code", spec=spec))


def user_texts(body: dict) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")


@needs_bwrap
def test_model_program_retried_with_its_error_then_used(run_dir):
    with ScriptedModel() as coder:
        ctx = context(run_dir, scripted(coder, [BROKEN, WORKS]), plot_retries=3)
        figures = make_figures(ctx, run_dir / "paper" / "figures")
        assert len(coder.requests) == 2
    first, second = (user_texts(body) for _, body, _ in coder.requests)
    assert "data/index.json" in first and "run_0/curves.json" in first and "step_val_acc_99" in first
    assert "KeyError" in second and "no_such_dataset" in second
    model = [f for f in figures if f.source == "model"]
    assert [Path(f.path).name for f in model] == ["model_loss.png", "model_ablations.png"]
    assert figures[:2] == model and len(figures) > 2  # ours fill the set
    assert model[0].data == ["nodes/0000-76fbfbfa5f89/run_0/curves.json"]
    assert model[1].data == ["stages/ablations/summary.json"]
    assert model[0].caption == "Training and validation loss of the best node."
    index = index_of(run_dir)
    reasons = {Path(d["path"]).name if d["path"] else d.get("key"): d["reason"] for d in index["dropped"]}
    assert reasons["model_loss_again.png"] == "duplicate of model_loss.png"
    assert reasons["model_loss_reencoded.png"] == "duplicate of model_loss.png"
    assert reasons["model_empty"].startswith("empty.png: blank")
    assert [a["ok"] for a in index["model"]["attempts"]] == [False, True]
    assert (run_dir / "paper" / "figures" / "model" / "attempt_1" / "plot_figures.py").read_text().strip() \
        == BROKEN.strip()
    assert not list(run_dir.glob(".figures-sandbox-*"))  # the scratch folders are gone


@needs_bwrap
@pytest.mark.parametrize("where", ["tmp", "var_tmp"])
def test_model_program_cannot_read_the_run_outside_data(tmp_path, where):
    if where == "var_tmp":  # outside /tmp, which the sandbox hides wholesale
        if not os.access("/var/tmp", os.W_OK):
            pytest.skip("/var/tmp is not writable")
        base = Path(tempfile.mkdtemp(dir="/var/tmp"))
    else:
        base = tmp_path
    try:
        run = copy_run(base / "run")
        leak = LEAK.replace("RUN_DIR", repr(str(run.resolve())))
        with ScriptedModel() as coder:
            figures = make_figures(context(run, scripted(coder, [leak, WORKS]), plot_retries=2),
                                   run / "paper" / "figures")
            second = user_texts(coder.requests[1][1])
        assert "config.yaml" in second and ("FileNotFoundError" in second or "PermissionError" in second)
        attempts = index_of(run)["model"]["attempts"]
        assert [a["ok"] for a in attempts] == [False, True]
        assert not any("leak" in f.path or f.caption == "leaked" for f in figures)
        assert any(f.source == "model" for f in figures)
    finally:
        if where == "var_tmp":
            shutil.rmtree(base, ignore_errors=True)


def test_all_attempts_failing_falls_back_to_our_figures(run_dir):
    with ScriptedModel() as coder:
        figures = make_figures(context(run_dir, scripted(coder, [BROKEN, BROKEN]), plot_retries=2),
                               run_dir / "paper" / "figures")
        assert len(coder.requests) == 2
    assert len(figures) >= 4 and all(f.source == "engine" for f in figures)
    assert [a["ok"] for a in index_of(run_dir)["model"]["attempts"]] == [False, False]
