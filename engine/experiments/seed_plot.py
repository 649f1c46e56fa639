"""The aggregate figure of a multi-seed evaluation: every metric's mean and standard error over the seeds."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MAX_PANELS = 12


def plot_seeds(per_seed: list[dict[str, float]], aggregate: dict[str, dict], title: str, out: Path) -> Path:
    """One panel per metric (at most 12): a bar at the mean, an error bar of one standard error, the seeds as dots.

    `per_seed` holds each seed's {metric: value}; `aggregate` the {metric: {mean, stderr, n}} over them."""
    names = list(aggregate)[:MAX_PANELS]
    cols = min(4, len(names)) or 1
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        agg = aggregate[name]
        values = [s[name] for s in per_seed if name in s]
        ax.bar([0], [agg["mean"]], yerr=[agg["stderr"] or 0.0], capsize=6, color="#8fb3d9", width=0.5)
        ax.scatter([0] * len(values), values, color="#1f3b5c", s=14, zorder=3)
        err = f" ± {agg['stderr']:.3g}" if agg["stderr"] is not None else ""
        ax.set_title(f"{name}\n{agg['mean']:.4g}{err} (n={agg['n']})", fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out
