"""The paper's figure set, made once per run and kept in paper/figures/ with figures.json.

With a model, it writes one aggregate plotting program over the run's result files (engine/writeup/figures/model.py);
our own deterministic figures (ours.py) are always drawn from the run directory too, and fill the set
when the model's attempts all fail, when it draws few, or offline. The final set is checked (checks.py): no
blank image, no picture twice, at most `writeup.max_figures`; every dropped figure is recorded with its reason.
A resumed writeup finds figures.json with all its files and returns it without redrawing anything."""
from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.phase import PhaseContext
from engine.sandbox.config import SandboxConfig
from engine.writeup.config import WriteupConfig
from engine.writeup.figures.checks import Candidate, check_set
from engine.writeup.figures.data import RunResults, load_run
from engine.writeup.figures.model import ModelResult, model_figures, plot_role
from engine.writeup.figures.ours import Drawn, Skipped, engine_figures

log = logging.getLogger(__name__)

INDEX = "figures.json"
DROPPED = "dropped"
# which of our figures a full set keeps first (the final best node's curves, then the stage results)
ENGINE_RANK = {"ablations_bars": 1, "tuning_bars": 2, "search_progress": 3, "stage_summary": 4,
               "ablations_curves": 5, "best_curves": 6, "tuning_curves": 7, "seeds": 8}


@dataclass(frozen=True)
class Figure:
    path: str  # relative to the run directory, under paper/figures/
    caption: str  # one or two factual sentences: what is plotted
    label: str  # LaTeX label, e.g. "fig:search_progress"
    source: str  # "model" or "engine"
    data: list[str]  # the result files it was drawn from, relative to the run directory


def make_figures(ctx: PhaseContext, out_dir: Path) -> list[Figure]:
    """The figure set of the run in `ctx` (PNGs and figures.json in `out_dir`); reused when already made."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reused = load_figures(ctx.run_dir, out_dir)
    if reused is not None:
        log.info("figures: reusing the %d figures listed in %s", len(reused), out_dir / INDEX)
        return reused
    _clear(out_dir)
    run = load_run(ctx.run_dir)
    cfg = WriteupConfig.of(ctx.cfg)
    model = ModelResult()
    role = plot_role(ctx.llm)
    if role is not None and ctx.llm is not None:
        log.info("figures: asking the %s model for a plotting program (up to %d attempts)", role, cfg.plot_retries)
        model = model_figures(ctx.llm, role, run, out_dir, _sandbox(ctx), ctx.cfg.sandbox.plot_timeout_s,
                              cfg.plot_retries, cfg.max_figures)
    ours, skipped = engine_figures(run, out_dir)
    figures, dropped = _final_set(run, ctx.run_dir, out_dir, model.drawn, ours, cfg.max_figures)
    dropped += [_skip_record(s, "engine") for s in skipped] + [_skip_record(s, "model") for s in model.skipped]
    index = {"figures": [asdict(f) for f in figures], "dropped": dropped,
             "model": {"role": role, "attempts": [asdict(a) for a in model.attempts]} if role else
             {"role": None, "why": "offline: no model configured"}}
    tmp = out_dir / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=2))
    tmp.replace(out_dir / INDEX)
    n_model = sum(f.source == "model" for f in figures)
    log.info("figures: %d in the set (%d by the model, %d our own), %d dropped", len(figures), n_model,
             len(figures) - n_model, len(dropped))
    ctx.tracker.log_event("writeup_figures", {"figures": len(figures), "model_figures": n_model,
                                              "dropped": len(dropped), "model_attempts": len(model.attempts)})
    return figures


def load_figures(run_dir: Path, out_dir: Path) -> list[Figure] | None:
    """The figures listed in out_dir/figures.json when every one of their files exists; else None."""
    index = out_dir / INDEX
    if not index.is_file():
        return None
    try:
        figures = [Figure(**f) for f in json.loads(index.read_text())["figures"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        log.warning("figures: %s is unreadable (%s); drawing the figures again", index, e)
        return None
    if not all((run_dir / f.path).is_file() for f in figures):
        log.info("figures: some files listed in %s are missing; drawing the figures again", index)
        return None
    return figures


def _sandbox(ctx: PhaseContext) -> SandboxConfig:
    return ctx.cfg.sandbox.for_plots()


def _clear(out_dir: Path) -> None:
    """Remove the PNGs of an unfinished earlier attempt, so nothing stale joins the new set."""
    for png in out_dir.glob("*.png"):
        png.unlink()
    for folder in (out_dir / DROPPED, out_dir / "model"):
        shutil.rmtree(folder, ignore_errors=True)


def _engine_priority(run: RunResults, d: Drawn) -> int:
    final = run.stages[-1]["name"] if run.stages else ""
    if d.key.startswith("best_curves") and d.key.endswith(final):
        return 1000
    return 1000 + 10 * next((r for p, r in ENGINE_RANK.items() if d.key.startswith(p)), 9)


def _final_set(run: RunResults, run_dir: Path, out_dir: Path, model: list[Drawn], ours: list[Drawn],
               max_figures: int) -> tuple[list[Figure], list[dict[str, Any]]]:
    """The checked set: the model's figures first, then ours by priority; returned in the paper's order."""
    drawn = {f"model:{d.key}": (d, "model") for d in model} | {f"engine:{d.key}": (d, "engine") for d in ours}
    candidates = [Candidate(d.file, i, key) for i, (key, (d, _)) in enumerate(drawn.items()) if key[0] == "m"]
    candidates += [Candidate(d.file, _engine_priority(run, d) + i, key)
                   for i, (key, (d, _)) in enumerate(drawn.items()) if key[0] == "e"]
    kept, rejected = check_set(candidates, max_figures)
    kept_keys = {c.key for c in kept}
    figures = [_figure(d, source, run_dir) for key, (d, source) in drawn.items() if key in kept_keys]
    dropped = []
    (out_dir / DROPPED).mkdir(exist_ok=True)
    for r in rejected:
        d, source = drawn[r.key]
        dest = out_dir / DROPPED / d.file.name
        if d.file.is_file():
            d.file.replace(dest)
        dropped.append({"path": _rel(dest, run_dir), "key": d.key, "source": source, "reason": r.reason,
                        "caption": d.caption})
    return figures, dropped


def _figure(d: Drawn, source: str, run_dir: Path) -> Figure:
    label = "fig:" + re.sub(r"[^a-z0-9_-]+", "_", d.key.lower())
    return Figure(_rel(d.file, run_dir), d.caption, label, source, list(dict.fromkeys(d.data)))


def _skip_record(s: Skipped, source: str) -> dict[str, Any]:
    return {"path": None, "key": s.key, "source": source, "reason": s.reason}


def _rel(path: Path, run_dir: Path) -> str:
    try:
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return str(path)
