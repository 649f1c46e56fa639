"""Read idea files people already have: a v1 seed_ideas.json or a v2 ideas JSON, kept as written.

v1 idea: {Name, Title, Experiment, Interestingness, Feasibility, Novelty[, novel]}
v2 idea: {Name, Title, Short Hypothesis, Related Work, Abstract, Experiments, Risk Factors and Limitations}
A file is a list of ideas, or an object holding one (e.g. {"ideas": [...]}, the shape of our own ideas.json).
Every key and value of the file is kept; the fields of the other format are added where they can be derived
(Experiment <-> Experiments) and are None where they cannot (a score is never invented). Each idea gets
`source`: "v1", "v2" or "v1+v2", the fields it came with (an existing `source` key is left alone).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.ideas.schema import SCORES, V2_TEXT, as_text
from engine.inputs.files import read_json

V2_MARKERS = ("Short Hypothesis", "Related Work", "Abstract", "Experiments", "Risk Factors and Limitations")


def load_ideas(path: str | Path, label: str | None = None) -> list[dict[str, Any]]:
    """The ideas of a file; EngineError naming it (as `label`, e.g. ideas.load=x.json) when it is missing, not
    readable, not UTF-8, not JSON or not a list of ideas."""
    return ideas_from_data(read_json(Path(path), label), label or path)


def ideas_from_data(data: Any, where: str | Path) -> list[dict[str, Any]]:
    """Check and normalise ideas already parsed from `where` (named in every error)."""
    if isinstance(data, dict):
        data = _wrapped_list(data, where)
    if not isinstance(data, list) or not data:
        raise EngineError(f"{where}: expected a non-empty JSON list of ideas (objects with Name and Title)")
    ideas = []
    for i, idea in enumerate(data):
        if not isinstance(idea, dict):
            raise EngineError(f"{where}: idea [{i}] is a {type(idea).__name__}, not an object with Name and Title")
        for key in ("Name", "Title"):
            if not isinstance(idea.get(key), str) or not idea[key].strip():
                raise EngineError(f"{where}: idea [{i}] has no {key} (a non-empty string is required)")
        ideas.append(normalise(idea))
    return ideas


def normalise(idea: dict[str, Any]) -> dict[str, Any]:
    """The idea unchanged, plus the fields of the other format (derived, or None)."""
    has_v2 = any(k in idea for k in V2_MARKERS)
    has_v1 = "Experiment" in idea
    out = dict(idea)
    if "Experiment" not in out:
        out["Experiment"] = as_text(idea.get("Experiments"))
    if "Experiments" not in out:
        out["Experiments"] = as_text(idea.get("Experiment"))
    for key in (*V2_TEXT, *SCORES, "novel"):
        out.setdefault(key, None)
    out.setdefault("source", "v1+v2" if has_v1 and has_v2 else "v2" if has_v2 else "v1")
    return out


def _wrapped_list(data: dict[str, Any], where: str | Path) -> Any:
    if isinstance(data.get("ideas"), list):
        return data["ideas"]
    lists = [v for v in data.values() if isinstance(v, list)]
    if len(lists) == 1:
        return lists[0]
    raise EngineError(f"{where}: a JSON object that does not hold one list of ideas (expected a list, or "
                      '{"ideas": [...]})')
