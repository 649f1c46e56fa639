"""Files a user hands in (ideas, topic files, templates, ratings, few-shot folders, resumed runs, PDFs, sweep folders)
and files a user asks for (an --out path), each refused in one line that names the file and what is wrong with it:
missing, a folder, not readable, not UTF-8, malformed (with the line), or of the wrong shape.

`label` is how the message names the file: the key or option that gave it (`ideas.load=ideas.json`,
`--ratings ratings.tsv`), else its path.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.errors import EngineError

KINDS = {dict: "a JSON object", list: "a JSON list"}


def read_bytes(path: Path, label: str | None = None) -> bytes:
    label = label or str(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise EngineError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise EngineError(f"{label}: a folder, not a file") from None
    except PermissionError:
        raise EngineError(f"{label}: not readable (permission denied)") from None
    except OSError as e:
        raise EngineError(f"{label}: cannot read it: {e.strerror or e}") from None


def read_text(path: Path, label: str | None = None) -> str:
    """The file's text, UTF-8 (a byte-order mark is allowed)."""
    data = read_bytes(path, label)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise EngineError(f"{label or path}: not UTF-8 text (byte {data[e.start]:#04x} on line {line}); save it as "
                          "UTF-8") from None


def read_json(path: Path, label: str | None = None, kind: type | None = None) -> Any:
    """The file's JSON; with `kind` (dict or list), of that shape."""
    text = read_text(path, label)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise EngineError(f"{label or path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if kind is not None and not isinstance(data, kind):
        raise EngineError(f"{label or path}: expected {KINDS[kind]}, found {_json_kind(data)}")
    return data


def read_yaml(path: Path, label: str | None = None) -> Any:
    import yaml

    text = read_text(path, label)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise EngineError(f"{label or path}: not valid YAML ({where}{problem})") from None


def output_file(path: Path, label: str | None = None) -> Path:
    """An output path, checked before anything is paid for: its folder exists and takes a new file, and the
    path itself is not a folder."""
    path = Path(path).expanduser().resolve()
    label = label or str(path)
    folder = path.parent
    if path.is_dir():
        raise EngineError(f"{label}: a folder; give a file name")
    if not folder.is_dir():
        raise EngineError(f"{label}: no folder {folder} to write it in; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise EngineError(f"{label}: not writable (permission denied)")
    return path


def output_folder(path: Path, label: str | None = None) -> Path:
    """An output folder, made if need be (its parents too); EngineError when it cannot be."""
    path = Path(path).expanduser().resolve()
    label = label or str(path)
    if path.exists() and not path.is_dir():
        raise EngineError(f"{label}: a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EngineError(f"{label}: cannot make the folder: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise EngineError(f"{label}: not writable (permission denied)")
    return path


def input_folder(path: Path, label: str | None = None) -> Path:
    path = Path(path).expanduser()
    label = label or str(path)
    if not path.exists():
        raise EngineError(f"{label}: no such folder")
    if not path.is_dir():
        raise EngineError(f"{label}: a file, not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise EngineError(f"{label}: not readable (permission denied)")
    return path.resolve()


def _json_kind(data: Any) -> str:
    for kind, name in KINDS.items():
        if isinstance(data, kind):
            return name
    return "null" if data is None else f"a JSON {type(data).__name__.replace('str', 'string')}"
