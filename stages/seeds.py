"""Multi-seed evaluation: which programs re-run the best node with other seeds, and how results aggregate."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from search import code_edit
from search.metric import flatten_final_info
from search.offline import SEED_NAMES  # looked for when the manifest names no seed parameter

__all__ = ["SEED_NAMES", "aggregate", "mean_stderr", "seed_param", "seed_value", "seed_variants"]


def seed_param(code: str, declared: str | None) -> str | None:
    """The hyperparameter that sets the random seed in `code`, or None when it has none."""
    present = code_edit.find_tunables(code)
    if declared is not None:
        return declared if declared in present else None
    by_lower = {name.lower(): name for name in present}  # v1 templates write constants: SEED = 0
    return next((by_lower[name] for name in SEED_NAMES if name in by_lower), None)


def seed_value(code: str, param: str) -> int:
    value = code_edit.find_tunables(code)[param].value
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"seed parameter {param} = {value!r} is not an integer")
    return value


def seed_variants(code: str, param: str, num_seeds: int) -> list[tuple[int, str]]:
    """(seed, program) for the seeds after the node's own: the node itself is the first of `num_seeds`."""
    current = seed_value(code, param)
    return [(current + k, code_edit.set_values(code, {param: current + k})) for k in range(1, num_seeds)]


def mean_stderr(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)); stderr None below 2 values."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None
    if len(vals) == 1:
        return vals[0], None
    return float(np.mean(vals)), float(stats.sem(vals))


def aggregate(final_infos: Sequence[dict]) -> dict[str, dict[str, float | int | None]]:
    """Per metric (group/metric) over the seeds' final_info files: mean, stderr, n."""
    per_metric: dict[str, list[float]] = {}
    for info in final_infos:
        for name, value in flatten_final_info(info).items():
            per_metric.setdefault(name, []).append(value)
    out = {}
    for name, values in per_metric.items():
        mean, stderr = mean_stderr(values)
        out[name] = {"mean": mean, "stderr": stderr, "n": len(values)}
    return out
