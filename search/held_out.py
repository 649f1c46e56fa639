"""Held-out metrics: numbers a template writes that the search must never see.

A template names them in its manifest (`held_out: [name, ...]`). They are taken out of every result as it
arrives, before anything judges, records or shows it: final_info.json keeps only the other metrics, and lines of
the program's output that name one are withheld. Only the final evaluation's runs keep their values (on the node,
`held_out`), for the run's reported result; the search's own runs keep none.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from search.metric import MetricSpec

WITHHELD = "[line withheld: it names a held-out metric]"


def split(final_info: Any, names: Sequence[str]) -> tuple[Any, dict[str, float]]:
    """(final_info without the held-out metrics, {name: value averaged over the groups that report it})."""
    if not names or not isinstance(final_info, dict):
        return final_info, {}
    hidden: dict[str, float] = {}
    for name in names:
        try:
            value = MetricSpec(name).extract(final_info)
        except (KeyError, ValueError):
            continue
        if math.isfinite(value):
            hidden[name] = value
    return _without(final_info, set(names)), hidden


def _without(value: Any, names: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [_without(v, names) for v in value]
    return value


def redact(text: str, names: Sequence[str]) -> str:
    """`text` with every line that names a held-out metric replaced by a marker."""
    if not names or not text:
        return text
    pattern = re.compile("|".join(re.escape(n) for n in names))
    return "\n".join(WITHHELD if pattern.search(line) else line for line in text.split("\n"))
