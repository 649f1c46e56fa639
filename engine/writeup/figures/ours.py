"""Our own figures, drawn deterministically from the run directory alone (never by re-running anything): the
search progress, each stage's best node's curves, the seed evaluations, the stages side by side, and the
tuning and ablation results. They are the paper's figures offline, and fill the set when the model draws few."""
from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from engine.writeup.figures.data import RunResults, Table, is_held_out, kind_of, node_tables, thin

log = logging.getLogger(__name__)

STYLE = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 8, "xtick.labelsize": 8,
         "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100}
MAX_PANELS, MAX_LINES = 8, 10
MARKERS = {"draft": "o", "improve": "^", "debug": "s", "copy": "D", "seed": "."}


@dataclass(frozen=True)
class Drawn:
    key: str  # file stem, unique in the set
    file: Path
    caption: str
    data: list[str]  # run-relative result files it was drawn from


@dataclass(frozen=True)
class Skipped:
    key: str
    reason: str


@contextmanager
def _figure(rows: int = 1, cols: int = 1, w: float = 4.4, h: float = 3.3) -> Iterator[tuple[Figure, np.ndarray]]:
    with rc_context(STYLE):
        fig = Figure(figsize=(w * cols, h * rows))
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        yield fig, axes


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=150)
    tmp.replace(path)
    return path


def _better(run: RunResults) -> str:
    return "lower is better" if run.lower_is_better() else "higher is better"


def _node_name(run: RunResults, node_id: str) -> str:
    node = run.nodes.get(node_id)
    return f"node {node.step}" if node else f"node {node_id}"


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return (n + cols - 1) // cols, cols


def _words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _stages(names: list[str]) -> str:
    return f"stage{'s' if len(names) > 1 else ''} {_words(names)}"


def _in_stage(stage: dict[str, Any]) -> str:
    return f"in the {str(stage.get('title') or stage['name']).lower()} stage"


# -- the search ----------------------------------------------------------------------------------------------
def search_progress(run: RunResults, out_dir: Path) -> Drawn | None:
    nodes = [n for n in run.nodes.values() if n.operator != "copy"]
    if not any(n.metric is not None for n in nodes):
        return None
    stage_names = [s["name"] for s in run.stages] or sorted({n.stage for n in nodes})
    with _figure(w=7.0, h=3.6) as (fig, (ax,)):
        failed, handles = 0, []
        for i, stage in enumerate(stage_names):
            mine = [n for n in nodes if n.stage == stage]
            good = [n for n in mine if n.metric is not None and not n.buggy]
            failed += sum(1 for n in mine if n.buggy or n.metric is None)
            for op in sorted({n.operator for n in good}):
                pts = [n for n in good if n.operator == op]
                ax.scatter([n.step for n in pts], [n.metric for n in pts], color=f"C{i}",
                           marker=MARKERS.get(op, "o"), s=28, zorder=3)
            handles.append(Line2D([], [], color=f"C{i}", marker="o", linestyle="-", label=stage))
            searched = [n for n in good if n.operator != "seed"]  # seed runs evaluate, they are not candidates
            if searched:
                vals = np.array([n.metric for n in searched], dtype=float)
                best = np.minimum.accumulate(vals) if run.lower_is_better() else np.maximum.accumulate(vals)
                ax.step([n.step for n in searched], best, where="post", color=f"C{i}", alpha=0.6)
        ops = sorted({n.operator for n in nodes if n.metric is not None and not n.buggy})
        handles += [Line2D([], [], color="gray", marker=MARKERS.get(op, "o"), linestyle="", label=op) for op in ops]
        bad = [n.step for n in nodes if n.buggy or n.metric is None]
        if bad:
            ax.scatter(bad, [0.02] * len(bad), transform=ax.get_xaxis_transform(), marker="x", color="crimson", s=30)
            handles.append(Line2D([], [], color="crimson", marker="x", linestyle="", label="failed (no metric)"))
        ax.set_xlabel("node (order in which it was run)")
        ax.set_ylabel(f"{run.metric} ({_better(run)})")
        ax.set_title("Search progress: the primary metric of every node")
        ax.legend(handles=handles, ncol=2, loc="best")
        path = _save(fig, out_dir / "search_progress.png")
    fail = f"; crosses mark the {failed} node(s) that produced no metric" if failed else ""
    return Drawn("search_progress", path,
                 f"{run.metric} ({_better(run)}) of every node in the order the nodes were run, coloured by stage; "
                 f"the step line is each stage's best so far; the marker shape is the node's operator{fail}.",
                 ["tree.json"])


# -- curves --------------------------------------------------------------------------------------------------
def _panels(tables: list[Table]) -> list[tuple[str, str, list[Table]]]:
    """(group, kind, tables) per panel: the same quantity of the same thing, over every run that saved it."""
    panels: dict[tuple[str, str], list[Table]] = {}
    for t in tables:
        for col in t.columns:
            panels.setdefault((t.group, kind_of(col)), [])
            if t not in panels[(t.group, kind_of(col))]:
                panels[(t.group, kind_of(col))].append(t)
    return [(g, k, ts) for (g, k), ts in panels.items()][:MAX_PANELS]


def _label(group: str) -> str:
    file, _, path = group.partition(":")
    return path or Path(file).stem


def _spread(tables: list[Table], cols: list[str]) -> float:
    """max / min of the positive values: log scale only pays when they span more than a decade or so."""
    vals = np.concatenate([t.columns[c] for t in tables for c in cols if c in t.columns])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    return float(vals.max() / vals.min()) if vals.size else 1.0


def _draw_panel(ax: Any, group: str, kind: str, tables: list[Table]) -> None:
    cols = [c for c in dict.fromkeys(c for t in tables for c in t.columns) if kind_of(c) == kind][:MAX_LINES]
    positive, n_runs = True, 1
    for ci, col in enumerate(cols):
        runs = [t for t in tables if col in t.columns]  # one table per run (seed) that saved this series
        n_runs = max(n_runs, len(runs))
        for ri, t in enumerate(runs):
            x, y = thin(t.x, t.columns[col])
            positive &= bool(np.all(y[np.isfinite(y)] > 0))
            ax.plot(x, y, color=f"C{ci}", linestyle="-" if is_held_out(col) or ci == 0 else "--",
                    alpha=1.0 if ri == 0 else 0.45, label=col if ri == 0 else None)
    if "loss" in kind.lower() and positive and _spread(tables, cols) > 30:
        ax.set_yscale("log")
    runs = f" ({n_runs} runs)" if n_runs > 1 else ""
    ax.set_title(f"{_label(group)}{runs}")
    ax.set_xlabel(tables[0].x_name)
    ax.set_ylabel(kind)
    ax.legend()


def best_curves(run: RunResults, out_dir: Path) -> tuple[list[Drawn], list[Skipped]]:
    """One figure per distinct best node (a stage that kept the previous stage's best shares its figure)."""
    owners: dict[str, list[str]] = {}
    for stage in run.stages:
        best = (stage.get("best") or {}).get("node_id")
        if best:
            owners.setdefault(run.original(best), []).append(stage["name"])
    drawn, skipped = [], []
    for node_id, stages in owners.items():
        key = f"best_curves_{'_'.join(stages)}"
        tables, used = node_tables(run, node_id)
        if not tables:
            skipped.append(Skipped(key, f"{_node_name(run, node_id)} saved no curves in run_0/ that could be read"))
            continue
        panels = _panels(tables)
        rows, cols = _grid(len(panels))
        with _figure(rows, cols) as (fig, axes):
            for ax, (group, kind, ts) in zip(axes, panels):
                _draw_panel(ax, group, kind, ts)
            for ax in axes[len(panels):]:
                ax.axis("off")
            fig.suptitle(f"Curves of {_node_name(run, node_id)}, the best node of {_stages(stages)}")
            path = _save(fig, out_dir / f"{key}.png")
        kinds = _words(list(dict.fromkeys(k for _, k, _ in panels)))
        drawn.append(Drawn(key, path, f"{kinds.capitalize()} curves saved by {_node_name(run, node_id)}, the best "
                                      f"node of {_stages(stages)}, against {tables[0].x_name}.", used))
    return drawn, skipped


def _main_column(tables: list[Table], kind: str) -> str | None:
    cols = [c for t in tables for c in t.columns if kind_of(c) == kind]
    return next((c for c in cols if is_held_out(c)), cols[0] if cols else None)


def change_curves(run: RunResults, stage_name: str, out_dir: Path) -> Drawn | None:
    """The held-out curve of the starting node and of each change of a stage (tuning, ablations), overlaid."""
    stage = next((s for s in run.stages if s["name"] == stage_name), None)
    if stage is None or not stage.get("started_from"):
        return None
    start = run.original(stage["started_from"].get("node_id") or "")
    changed = [h for h in stage.get("history", []) if h.get("operator") not in ("copy", "seed")
               and not h.get("buggy") and h.get("id") in run.nodes][:MAX_LINES - 1]
    base_tables, used = node_tables(run, start)
    if not base_tables or not changed:
        return None
    series = [(f"start ({_node_name(run, start)})", base_tables)]
    for h in changed:
        tables, files = node_tables(run, h["id"])
        if tables:
            series.append((h.get("change") or _node_name(run, h["id"]), tables))
            used += files
    if len(series) < 2:
        return None
    panels = [(g, k) for g, k, _ in _panels(base_tables)][:4]
    plotted = []
    rows, cols = _grid(len(panels))
    what = "ablation" if stage_name == "ablations" else "change"
    with _figure(rows, cols) as (fig, axes):
        for ax, (group, kind) in zip(axes, panels):
            col = _main_column([t for t in base_tables if t.group == group], kind)
            plotted.append(col)
            for i, (label, tables) in enumerate(series):
                mine = [t for t in tables if t.group == group and col in t.columns]
                if mine:
                    x, y = thin(mine[0].x, mine[0].columns[col])
                    ax.plot(x, y, color="black" if i == 0 else f"C{i - 1}", linewidth=2.0 if i == 0 else 1.2,
                            label=label)
            ax.set_title(f"{_label(group)}: {col}")
            ax.set_xlabel(base_tables[0].x_name)
            ax.set_ylabel(kind)
            ax.legend()
        for ax in axes[len(panels):]:
            ax.axis("off")
        fig.suptitle(f"{stage.get('title', stage_name)}: curves of the starting node and each {what}")
        path = _save(fig, out_dir / f"{stage_name}_curves.png")
    return Drawn(f"{stage_name}_curves", path,
                 f"{_words(list(dict.fromkeys(plotted)))} curves (first run of each) of the starting node and of "
                 f"each {what} {_in_stage(stage)}, from the result files the nodes saved.",
                 [run.stage_file(stage), *dict.fromkeys(used)])


# -- results per stage -------------------------------------------------------------------------------------
def change_bars(run: RunResults, stage_name: str, out_dir: Path) -> Drawn | None:
    """The primary metric of each named change of a stage next to its starting node's value."""
    stage = next((s for s in run.stages if s["name"] == stage_name), None)
    if stage is None:
        return None
    rows = [h for h in stage.get("history", []) if h.get("operator") not in ("copy", "seed")]
    if not any(isinstance(h.get("value"), (int, float)) for h in rows):
        return None
    start = (stage.get("started_from") or {}).get("value")
    what = "ablation" if stage_name == "ablations" else "hyperparameter change"
    labels = [_change_label(h) for h in rows]
    with _figure(w=6.4, h=0.45 * len(rows) + 1.6) as (fig, (ax,)):
        ys = np.arange(len(rows))
        vals = [h["value"] if isinstance(h.get("value"), (int, float)) and not h.get("buggy") else np.nan
                for h in rows]
        ax.barh(ys, vals, color="#5b8cc0", height=0.6)
        for y, v in zip(ys, vals):
            ax.text(0.01, y, " failed" if np.isnan(v) else f" {v:.4g}", va="center", fontsize=8,
                    transform=ax.get_yaxis_transform(), color="crimson" if np.isnan(v) else "black")
        if isinstance(start, (int, float)):
            ax.axvline(start, color="black", linestyle="--", label=f"starting node ({start:.4g})")
            ax.legend(loc="lower right")
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.set_xlabel(f"{run.metric} ({_better(run)})")
        ax.set_title(f"{stage.get('title', stage_name)}: {run.metric} per {what}")
        path = _save(fig, out_dir / f"{stage_name}_bars.png")
    failed = sum(1 for v in vals if np.isnan(v))
    fail = f" {failed} run(s) failed and are marked as such." if failed else ""
    start_txt = ", with the starting node's value as the dashed line" if isinstance(start, (int, float)) else ""
    return Drawn(f"{stage_name}_bars", path,
                 f"{run.metric} ({_better(run)}) of each {what} {_in_stage(stage)}{start_txt}.{fail}",
                 [run.stage_file(stage)])


def _change_label(h: dict[str, Any]) -> str:
    """The change's name, with its old and new value when the plan states them ("from 4 to 8", "4 -> 8")."""
    name = h.get("change") or f"node {h.get('step')}"
    m = re.search(r"from (\S+) to (\S+?)\.?$", str(h.get("plan") or "")) or \
        re.search(r"(\S+) -> (\S+?)\.?$", str(h.get("plan") or ""))
    return f"{name}\n{m.group(1)} → {m.group(2)}" if m else name


def stage_summary(run: RunResults, out_dir: Path) -> Drawn | None:
    """Each stage's best node: its seed mean and standard error, and the single seeds as dots."""
    rows = [s for s in run.stages if isinstance((s.get("seeds") or {}).get("mean"), (int, float))]
    if len(rows) < 2:
        return None
    with _figure(w=6.0, h=3.4) as (fig, (ax,)):
        xs = np.arange(len(rows))
        means = [s["seeds"]["mean"] for s in rows]
        errs = [s["seeds"].get("stderr") or 0.0 for s in rows]
        ax.bar(xs, means, yerr=errs, capsize=6, color="#8fb3d9", width=0.55, label="seed mean ± s.e.")
        for x, s in zip(xs, rows):
            vals = [v for v in s["seeds"].get("values", []) if isinstance(v, (int, float))]
            ax.scatter([x] * len(vals), vals, color="#1f3b5c", s=16, zorder=3)
        ax.set_xticks(xs, [s.get("title", s["name"]) for s in rows], rotation=15)
        ax.set_ylabel(f"{run.metric} ({_better(run)})")
        ax.set_title("The best node of each stage over seeds")
        ax.legend(loc="best")
        path = _save(fig, out_dir / "stage_summary.png")
    return Drawn("stage_summary", path,
                 f"{run.metric} ({_better(run)}) of each stage's best node: mean and standard error over its seed "
                 f"runs, single seeds as dots.", [run.stage_file(s) for s in rows])


def seed_figures(run: RunResults, out_dir: Path) -> tuple[list[Drawn], list[Skipped]]:
    """Each stage's seed figure (stages/<stage>/seeds.png), once per distinct set of seed runs."""
    drawn, skipped, seen = [], [], {}
    for stage in run.stages:
        seeds = stage.get("seeds") or {}
        key = f"seeds_{stage['name']}"
        runs = frozenset(run.original(n) for n in seeds.get("node_ids", []))
        src = run.run_dir / str(seeds.get("plot") or f"stages/{stage['name']}/seeds.png")
        if not runs or not src.is_file():
            continue
        if runs in seen:
            skipped.append(Skipped(key, f"the same seed runs as stage {seen[runs]}'s figure"))
            continue
        seen[runs] = stage["name"]
        dest = out_dir / f"{key}.png"
        shutil.copyfile(src, dest)
        best = (stage.get("best") or {}).get("node_id", "")
        data = [run.stage_file(stage)] + ([str(seeds["table"])] if (run.run_dir / str(seeds.get("table"))).is_file()
                                          else [])
        drawn.append(Drawn(key, dest, f"Multi-seed evaluation of {_node_name(run, run.original(best))}, the best "
                                      f"node {_in_stage(stage)}: mean and standard error of each metric over "
                                      f"{seeds.get('ok', len(runs))} seeds, single seeds as dots.", data))
    return drawn, skipped


def engine_figures(run: RunResults, out_dir: Path) -> tuple[list[Drawn], list[Skipped]]:
    """All of our figures, in the order a paper would show them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    curves, skipped = best_curves(run, out_dir)
    seeds, same_seeds = seed_figures(run, out_dir)
    drawn = [search_progress(run, out_dir), *curves, *seeds, stage_summary(run, out_dir),
             change_bars(run, "tuning", out_dir), change_curves(run, "tuning", out_dir),
             change_bars(run, "ablations", out_dir), change_curves(run, "ablations", out_dir)]
    log.info("drew %d figures of our own from %s", sum(d is not None for d in drawn), run.run_dir)
    return [d for d in drawn if d is not None], skipped + same_seeds
