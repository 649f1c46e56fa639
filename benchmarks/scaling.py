"""Paper quality against the base model and against test-time compute, from the runs of one or more sweeps.

    python -m benchmarks.scaling multirun/<sweep> [more sweep or run directories] --out scaling/ \\
        [--review-benchmark benchmark_results/iclr2022_<model>_.../metrics.json] [--tracking auto|wandb|none]

Collects every run (model, release date, search.budget_scale, seed, the review's Overall and Decision, the best
primary metric, nodes, tokens and cost from the run's ledger, wall time) into runs.parquet; fits the Overall score
against the model's release date and against log10 compute (tokens; nodes), pooled and within each model
(ordinary least squares, scipy.stats.linregress, with a 95% interval for the slope and a p-value; Spearman's rank
correlation beside it); writes scaling_release_date.png, scaling_compute.png, fits.json and report.md, and logs
the table and the plots to the sweep's wandb group (job_type "analysis"). Runs without a review are listed, never
dropped in silence; a fit with too few points says so. With --review-benchmark, the report gives the ICLR
benchmark's balanced accuracy of the reviewer, so a reader knows how far to trust the scores.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

from benchmarks.sweep_runs import COLUMNS, benchmark_metrics, canonical_model, collect, mapping, read_mapping
from engine.errors import EngineError
from engine.inputs.files import output_folder, read_yaml
from engine.inputs.values import ArgumentParser
from engine.sweep import RECORD
from search.metric import finite_number

MIN_POINTS = 3  # a line through fewer points has no interval


@dataclass
class Fit:
    against: str  # what the Overall score is fitted against
    n: int
    slope: float | None = None  # Overall points per unit of x (a year; a tenfold increase)
    ci95: tuple[float, float] | None = None
    p_value: float | None = None
    intercept: float | None = None
    r2: float | None = None
    spearman_rho: float | None = None
    spearman_p: float | None = None
    note: str | None = None  # why there is no fit


# --- fits ---------------------------------------------------------------------------------------------------------

def fit(xs: list[float], ys: list[float], against: str) -> Fit:
    """Overall ~ x by ordinary least squares (scipy), the slope's 95% interval from the t distribution, and
    Spearman's rank correlation; a Fit with a note when the points cannot carry a line."""
    n = len(xs)
    if n < MIN_POINTS:
        return Fit(against, n, note=f"too few points for a fit: {n} reviewed run(s), at least {MIN_POINTS} needed")
    if len(set(xs)) < 2:
        return Fit(against, n, note=f"too few points for a fit: all {n} runs have the same {against}")
    if len(set(ys)) < 2:
        return Fit(against, n, note=f"no fit: all {n} runs have the same score ({ys[0]:g})")
    res = stats.linregress(xs, ys)
    half = stats.t.ppf(0.975, n - 2) * res.stderr
    rho = stats.spearmanr(xs, ys)
    return Fit(against, n, float(res.slope), (float(res.slope - half), float(res.slope + half)), float(res.pvalue),
               float(res.intercept), float(res.rvalue ** 2), finite_number(rho.statistic), finite_number(rho.pvalue))


def fits(rows: list[dict[str, Any]]) -> list[Fit]:
    """Pooled fits against release date, log10 tokens and log10 nodes; then compute fits within each model."""
    scored = [r for r in rows if r["overall"] is not None]
    dated = [r for r in scored if r["release_date"]]
    out = [fit([decimal_year(r["release_date"]) for r in dated], [r["overall"] for r in dated], "release date")]
    for key in ("tokens", "nodes"):
        ok = [r for r in scored if (r[key] or 0) > 0]
        out.append(fit([math.log10(r[key]) for r in ok], [r["overall"] for r in ok], f"log10 {key}"))
    for model in sorted({r["model"] for r in scored}):
        mine = [r for r in scored if r["model"] == model and (r["tokens"] or 0) > 0]
        if len(mine) >= MIN_POINTS:  # a model swept over compute (search.budget_scale) or seeds
            out.append(fit([math.log10(r["tokens"]) for r in mine], [r["overall"] for r in mine],
                           f"log10 tokens (model {model})"))
    return out


def decimal_year(iso: str) -> float:
    d = date.fromisoformat(str(iso)[:10])
    return d.year + (d.timetuple().tm_yday - 1) / 365.25


# --- plots --------------------------------------------------------------------------------------------------------

def plot_release_date(rows: list[dict[str, Any]], f: Fit, path: Path) -> None:
    plt = _pyplot()
    import matplotlib.dates as mdates

    fig, ax = plt.subplots(figsize=(6, 4))
    for model, mine in _by_model(rows):
        dated = [r for r in mine if r["release_date"]]
        if dated:
            ax.scatter([date.fromisoformat(str(r["release_date"])[:10]) for r in dated], [r["overall"] for r in dated],
                       label=model, alpha=0.75, s=40)
    _fit_line(ax, f, "per year", lambda xs: np.array([decimal_year(d.date().isoformat())
                                                       for d in mdates.num2date(xs)]))
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.set(xlabel="the base model's release date", ylabel="review Overall (1-10)",
           title="Paper quality against the base model")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    _save(fig, path)


def plot_compute(rows: list[dict[str, Any]], pooled: dict[str, Fit], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    markers = dict(zip(sorted({r["budget_scale"] for r in rows if r["overall"] is not None}), "osD^v<>p*h"))
    for ax, key in zip(axes, ("tokens", "nodes")):
        for i, (_, mine) in enumerate(_by_model(rows)):
            for r in mine:
                if (r[key] or 0) > 0:
                    ax.scatter(r[key], r["overall"], color=f"C{i}", marker=markers[r["budget_scale"]], alpha=0.75,
                               s=40)
        ax.set_xscale("log")
        _fit_line(ax, pooled[key], "per 10x", np.log10, log=True)
        _plain_log_ticks(ax)
        ax.set(xlabel=f"{key} per run (log scale)", title=f"Paper quality against {key} (all models pooled)")
        handles = [plt.Line2D([], [], color=f"C{i}", marker="o", ls="", label=m) for i, (m, _) in
                   enumerate(_by_model(rows))]
        handles += [plt.Line2D([], [], color="grey", marker=mk, ls="", label=f"budget x{s:g}")
                    for s, mk in markers.items()]
        ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=7, loc="best")
    axes[0].set_ylabel("review Overall (1-10)")
    _save(fig, path)


def _fit_line(ax: Any, f: Fit, unit: str, to_x: Any, log: bool = False) -> None:
    """The fitted line across the axis; `to_x` maps the axis' coordinates to the fit's x."""
    if f.slope is None:
        ax.text(0.02, 0.02, f.note or "", transform=ax.transAxes, fontsize=7, color="grey")
        return
    lo, hi = ax.get_xlim()
    xs = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi, 50)
    ax.plot(xs, f.intercept + f.slope * to_x(xs), "k--", lw=1,
            label=f"OLS {f.slope:+.2f} {unit} (95% CI {f.ci95[0]:+.2f} to {f.ci95[1]:+.2f}), p={f.p_value:.2g}, "
                  f"n={f.n}")
    ax.set_xlim(lo, hi)


def _plain_log_ticks(ax: Any) -> None:
    """Tick labels as plain numbers (2000, not 2x10^3); on a short axis the minor ticks too (at 2, 3, 5 x 10^k)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    some = FuncFormatter(lambda v, _: f"{v:g}" if hi / lo < 3 or round(v / 10 ** math.floor(math.log10(v)))
                         in (2, 3, 5) else "")
    ax.xaxis.set_minor_formatter(some if hi / lo < 30 else NullFormatter())


def _by_model(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    scored = [r for r in rows if r["overall"] is not None]
    order = sorted({r["model"] for r in scored}, key=lambda m: (min(
        (r["release_date"] or "9999") for r in scored if r["model"] == m), m))
    return [(m, [r for r in scored if r["model"] == m]) for m in order]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)


# --- reviewer calibration -----------------------------------------------------------------------------------------

def calibration(benchmarks: list[Path], reviewers: list[str]) -> list[str]:
    """The report's lines on how far the reviewer's scores can be trusted (the ICLR benchmark's figures)."""
    reviewers = sorted({canonical_model(r) for r in reviewers})  # one model under its two names is one reviewer
    names = ", ".join(f"`{r}`" for r in reviewers) or "none (no run was reviewed)"
    lines = ["## How far to trust the scores: the reviewer on ICLR 2022", "",
             f"Reviewer model(s) of these runs: {names}."]
    if len(reviewers) > 1:
        lines.append(f"**The runs were scored by {len(reviewers)} different reviewers**: their scores are not on one "
                     "scale. To compare base models, keep one reviewer for every run (`llm.roles.review=<model>`).")
    if not benchmarks:
        return lines + ["", "No reviewer benchmark was given (`--review-benchmark metrics.json`): the reviewer's "
                        "accuracy is unknown here. Measure it with `python -m benchmarks.iclr_review --model "
                        "<reviewer>` (README: the ICLR benchmark); 0.5 balanced accuracy is chance, the published "
                        "GPT-4o reviewer reached 0.65 (Decision = Overall >= 6)."]
    for path in benchmarks:
        m = benchmark_metrics(path)
        model = benchmark_model(path)
        ci = (m.get("ci95") or {}).get("balanced_accuracy")
        at6 = (m.get("by_threshold") or {}).get("6") or {}
        lines += ["", f"- `{path}` (reviewer `{model or 'not named in the path'}`, {m.get('n')} papers): balanced "
                  f"accuracy **{m['balanced_accuracy']:.3f}**" + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
                  + f", accuracy {m['accuracy']:.3f}, F1 {m['f1']:.3f}, ROC AUC of Overall {m['roc_auc']:.3f}"
                  + (f"; Decision = Overall >= 6: balanced accuracy {at6['balanced_accuracy']:.3f}" if at6 else "")
                  + ". 0.5 is chance."]
        if model and reviewers and canonical_model(model) not in reviewers:
            lines.append(f"  **This benchmark measured `{model}`, not the reviewer of these runs**: it says little "
                         "about these scores.")
    return lines


def benchmark_model(path: Path) -> str | None:
    """The reviewer a benchmark result is for: its metrics.json's "model", else the folder name that
    benchmarks.iclr_review gives it (iclr2022_<model>_fs<k>_refl<r>_ens<e>_t<temperature>)."""
    m = benchmark_metrics(path)
    if m.get("model"):
        return str(m["model"])
    found = re.match(r"iclr2022_(.+)_fs\d+_refl\d+_ens\d+_t[\d.]+$", path.resolve().parent.name)
    return found.group(1) if found else None


# --- report -------------------------------------------------------------------------------------------------------

def report(rows: list[dict[str, Any]], all_fits: list[Fit], timing: list[dict[str, Any]], benchmarks: list[Path],
           out: Path) -> str:
    scored = [r for r in rows if r["overall"] is not None]
    unscored = [r for r in rows if r["overall"] is None]
    lines = ["# Paper quality against the base model and test-time compute", "",
             f"{len(rows)} runs from {len({r['sweep'] for r in rows})} sweep(s): {len(scored)} with a review, "
             f"{len(unscored)} without. Scores are the Automated Reviewer's Overall (1-10) of each run's paper.", ""]
    for t in timing:
        lines.append(f"- sweep `{t['sweep']}`: {t['launches']} launch(es) took {t['sweep_wall_s']:.0f} s; its runs "
                     f"took {t['runs_wall_s']:.0f} s together ({t['overlap']:.1f}x the sweep's wall time)"
                     if t["sweep_wall_s"] else f"- sweep `{t['sweep']}`: no {RECORD} (not launched as a sweep)")
    lines += ["", "## Runs", "", "| run | model | released | budget x | seed | status | Overall | Decision | best "
              "metric | nodes | tokens | cost (USD) | wall (s) |", "|" + "---|" * 13]
    for r in rows:
        lines.append("| " + " | ".join(_cell(v) for v in (
            r["run"], r["model"], r["release_date"], r["budget_scale"], r["seed"], r["status"], r["overall"],
            r["decision"], r["best_metric"], r["nodes"], r["tokens"], r["cost_usd"], r["wall_time_s"])) + " |")
    lines += ["", "## Runs without a review", ""]
    lines += [f"- `{r['run']}` ({r['status']}): {r['why_no_review']}" for r in unscored] or ["None."]
    lines += ["", "## Fits", "", "Ordinary least squares of Overall on x (`scipy.stats.linregress`; the slope's 95% "
              "interval from the t distribution), Spearman's rank correlation beside it. Every reviewed run is one "
              "point (seeds are not averaged). Pooled over models, compute goes with the model (a model may use more "
              "tokens per call): the compute axis proper is the fits within one model, swept over "
              "`search.budget_scale` or seeds (given where a model has 3 reviewed runs or more).", "",
              "| Overall against | n | slope | 95% CI | p | R² | Spearman ρ (p) |", "|---|---|---|---|---|---|---|"]
    for f in all_fits:
        if f.slope is None:
            lines.append(f"| {f.against} | {f.n} | {f.note} | | | | |")
        else:
            unit = "per year" if f.against == "release date" else "per 10x"
            lines.append(f"| {f.against} | {f.n} | {f.slope:+.3f} {unit} | {f.ci95[0]:+.3f} to {f.ci95[1]:+.3f} | "
                         f"{f.p_value:.3g} | {f.r2:.3f} | " + (f"{f.spearman_rho:+.3f} ({f.spearman_p:.3g})"
                                                                if f.spearman_rho is not None else "") + " |")
    lines += ["", "![Overall against release date](scaling_release_date.png)", "",
              "![Overall against compute](scaling_compute.png)", "",
              *calibration(benchmarks, sorted({r["reviewer"] for r in scored if r["reviewer"]}))]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def sweep_timing(paths: list[Path], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        if not (path.resolve() / RECORD).is_file():
            continue
        record = read_mapping(path.resolve() / RECORD)
        wall = sum(launch.get("wall_time_s") or 0 for launch in record.get("launches", []))
        runs = sum(r["wall_time_s"] or 0 for r in rows if r["sweep"] == path.resolve().name)
        out.append({"sweep": path.resolve().name, "launches": len(record.get("launches", [])),
                    "sweep_wall_s": wall, "runs_wall_s": runs, "overlap": runs / wall if wall else 0.0})
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "/")


# --- wandb --------------------------------------------------------------------------------------------------------

def log_to_wandb(rows: list[dict[str, Any]], all_fits: list[Fit], images: dict[str, Path], out: Path,
                 mode: str) -> str | None:
    """The table and the plots, as a wandb run of job_type "analysis" in the runs' group; None when not logged."""
    from engine.config import shipped_tracking
    from engine.tracking import make_tracker

    configs = [mapping(read_yaml(Path(r["run_dir"], "config.yaml")), Path(r["run_dir"], "config.yaml")) for r in rows
               if r["run_dir"] and Path(r["run_dir"], "config.yaml").is_file()]
    tracking = [c.get("tracking") or {} for c in configs]
    if mode == "none" or (mode == "auto" and not any(t.get("kind") == "wandb" for t in tracking)):
        return None
    first = next((t for t in tracking if t.get("group")), tracking[0] if tracking else {})
    group = first.get("group") or (rows[0]["sweep"] if rows else "scaling")
    shipped = shipped_tracking("wandb")
    cfg = replace(shipped, project=first.get("project") or shipped.project, entity=first.get("entity"), group=group,
                  mode=first.get("mode") if first.get("mode") != "disabled" else None, job_type="analysis")
    tracker = make_tracker(cfg, out, f"scaling-{group}", {"sweeps": sorted({r["sweep"] for r in rows})})
    tracker.log_table("scaling_runs", rows)
    tracker.log_images(images)
    tracker.finish({"fits": {f.against: {k: v for k, v in asdict(f).items() if k != "against"} for f in all_fits}})
    return group


# --- command line -------------------------------------------------------------------------------------------------

def analyse(paths: list[Path], out: Path, benchmarks: list[Path], tracking: str = "auto") -> dict[str, Any]:
    for path in benchmarks:
        benchmark_metrics(path)  # a malformed benchmark file stops the analysis before it writes anything
    rows = collect(paths)
    if not rows:
        raise EngineError(f"no runs found under {', '.join(map(str, paths))}")
    output_folder(out, f"--out {out}")
    pq.write_table(pa.Table.from_pylist(rows, schema=COLUMNS), out / "runs.parquet")
    all_fits = fits(rows)
    pooled = {f.against.removeprefix("log10 "): f for f in all_fits[:3]}
    images = {"scaling_release_date": out / "scaling_release_date.png", "scaling_compute": out / "scaling_compute.png"}
    plot_release_date(rows, pooled["release date"], images["scaling_release_date"])
    plot_compute(rows, pooled, images["scaling_compute"])
    timing = sweep_timing(paths, rows)
    text = report(rows, all_fits, timing, benchmarks, out)
    result = {"runs": len(rows), "reviewed": sum(r["overall"] is not None for r in rows),
              "without_review": [{"run": r["run"], "status": r["status"], "why": r["why_no_review"]}
                                 for r in rows if r["overall"] is None],
              "fits": [asdict(f) for f in all_fits], "timing": timing}
    result["wandb_group"] = log_to_wandb(rows, all_fits, images, out, tracking)
    (out / "fits.json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", nargs="+", type=Path, help="sweep directories (hydra.sweep.dir), or run directories")
    ap.add_argument("--out", type=Path, required=True, help="where the table, plots and report go")
    ap.add_argument("--review-benchmark", type=Path, action="append", default=[],
                    help="metrics.json of `python -m benchmarks.iclr_review` for the runs' reviewer (repeatable)")
    ap.add_argument("--tracking", choices=("auto", "wandb", "none"), default="auto",
                    help="auto: log to wandb when the runs did (offline without WANDB_API_KEY)")
    args = ap.parse_args(argv)
    try:
        analyse(args.sweeps, args.out, args.review_benchmark, args.tracking)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
