"""Prompts are text files with $placeholders (string.Template), kept next to the code that uses them."""
from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template


@cache
def _template(folder: Path, name: str) -> Template:
    return Template((folder / f"{name}.md").read_text())


def render_from(folder: Path, name: str, **values: object) -> str:
    """The prompt `folder/name.md` with every $placeholder filled; KeyError names a missing one."""
    return _template(folder, name).substitute({k: str(v) for k, v in values.items()}).strip()
