"""The statistics of the final evaluation: a mean with its t-interval, and paired differences on the same fresh
seeds (the result against its baseline, each ablation against the result), with their verdicts."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

LEVEL = 0.95


def interval(values: Sequence[float]) -> dict[str, Any]:
    """{mean, stderr, ci95 [lo, hi], n}: the t-interval of the mean (None below two values)."""
    vals = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(vals.size)
    if n == 0:
        return {"mean": None, "stderr": None, "ci95": None, "n": 0}
    mean = float(vals.mean())
    if n == 1:
        return {"mean": mean, "stderr": None, "ci95": None, "n": 1}
    stderr = float(stats.sem(vals))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * stderr
    return {"mean": mean, "stderr": stderr, "ci95": [mean - half, mean + half], "n": n}


def paired(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, Any]:
    """a - b seed by seed (the pairs where both ran), with the t-interval of the mean difference; `significant`
    when the interval excludes zero."""
    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x - y)]
    out = interval(diffs)
    ci = out["ci95"]
    out["significant"] = ci is not None and (ci[0] > 0 or ci[1] < 0)
    return out


def better(delta: float, maximize: bool) -> bool:
    """Whether a difference (a - b) means a is better than b for a metric of this direction."""
    return delta > 0 if maximize else delta < 0


def improvement_text(diff: dict[str, Any], maximize: bool, metric: str) -> str:
    """The result against the baseline in words: a claim only when the interval of the difference excludes 0."""
    if diff.get("n", 0) < 2 or diff.get("ci95") is None:
        return "no interval (fewer than two paired fresh runs)"
    lo, hi = diff["ci95"]
    d = diff["mean"]
    span = (f"seed by seed, the result's {metric} is {abs(d):.4g} {'lower' if d < 0 else 'higher'} than the "
            f"baseline's on average (95% CI [{lo:+.4g}, {hi:+.4g}], {diff['n']} seeds)")
    if not diff["significant"]:
        return f"no significant difference from the baseline: {span}"
    return f"{'better' if better(d, maximize) else 'worse'} than the baseline: {span}"


def verdict(delta: dict[str, Any], maximize: bool) -> str:
    """An ablation's effect (its metric minus the result's, paired): hurts, helps or no clear effect."""
    if not delta.get("significant"):
        return "no clear effect"
    return "helps" if better(delta["mean"], maximize) else "hurts"
