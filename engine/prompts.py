"""Prompts are text files in engine/prompts/ with $placeholders (string.Template)."""
from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"


@cache
def _template(name: str) -> Template:
    return Template((PROMPT_DIR / f"{name}.md").read_text())


def render(name: str, **values: object) -> str:
    """The prompt `name` with every $placeholder filled; KeyError names a missing one."""
    return _template(name).substitute({k: str(v) for k, v in values.items()}).strip()
