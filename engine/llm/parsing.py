"""Getting code and JSON out of model replies that do not always follow instructions."""
from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


class ParseError(ValueError):
    """The reply did not contain what was asked for; the message is fed back to the model."""


def extract_code(text: str, language: str = "python") -> str:
    """The program in a reply: the longest fenced block tagged `language` (or untagged, or `py`) that
    compiles; a truncated last block (no closing fence) counts if it compiles; a reply with no fence at all
    counts if the whole of it compiles."""
    blocks = [(tag.lower(), body.strip("\n")) for tag, body in _FENCE.findall(text)]
    wanted = {language, "", "py", "python3"} if language == "python" else {language, ""}
    candidates = [body for tag, body in blocks if tag in wanted] or [body for _, body in blocks]
    if not blocks and text.strip():
        candidates = [text.strip()]
    errors = []
    for body in sorted(candidates, key=len, reverse=True):
        if language != "python":
            return body
        try:
            compile(body, "<reply>", "exec")
            return body + "\n"
        except SyntaxError as e:
            errors.append(f"line {e.lineno}: {e.msg}")
    if not candidates:
        raise ParseError(f"the reply holds no ```{language} code block")
    raise ParseError(f"the {language} code in the reply does not compile ({errors[0]}); "
                     "reply with the complete program in one ```python block")


def extract_json(text: str) -> Any:
    """The JSON object in a reply: a ```json block, any fenced block that parses, or the outermost {...}."""
    for tag, body in _FENCE.findall(text):
        if tag.lower() in ("json", ""):
            try:
                return json.loads(body)
            except json.JSONDecodeError:
                continue
    start, end = text.find("{"), text.rfind("}")
    if start >= 0 and end > start:
        try:
            return json.loads(text[start:end + 1])
        except json.JSONDecodeError as e:
            raise ParseError(f"the JSON in the reply does not parse: {e.msg} at char {e.pos}") from None
    raise ParseError("the reply holds no JSON object; reply with one ```json block")
