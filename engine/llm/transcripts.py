"""Record every call's request and reply; replay them later with no API call at all.

A reply is found by its request: a hash of what was asked (role, model, system prompt, messages with the bytes of
their images, the forced tool or JSON schema). Among identical requests the call's place, (node step, role, n-th
call of that role for that node), decides, so each recorded reply answers one request, the one it answered
before when it exists. A replayed search thus gives each parent the programs written for it, whatever order its
re-executed experiments finish in; a request the recorded run never made has no reply (ReplayMiss).
Transcripts recorded before requests were hashed are matched by the call's place alone.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.llm.providers import Request, Response
from engine.rundir import read_json, write_json

log = logging.getLogger(__name__)
Key = tuple[Any, str, int]


def _request_json(req: Request) -> dict[str, Any]:
    return {"system": req.system, "max_tokens": req.max_tokens, "temperature": req.temperature,
            "tool": None if req.tool is None else req.tool.name,
            "messages": [{"role": m["role"], "content": m["content"], "images": len(m.get("images") or []),
                          "image_sha256": [hashlib.sha256(i).hexdigest() for i in m.get("images") or []]}
                         for m in req.messages]}


# facts about where and how fast a node ran, which the engine writes into later prompts and which differ in every
# execution (engine/nodes/driver.py's analysis line, the stage-3 scale-up note): masked before hashing, so that a
# re-executed experiment asks the same question
_VOLATILE = [(re.compile(r"Runner: \S+ \(Ray node \w+\) pid \d+, GPUs [\w,-]+"), "Runner: (masked)"),
             (re.compile(r"\bRan in \d+s\b"), "Ran in (masked)"),
             (re.compile(r"\btook \d+ s of\b"), "took (masked) of")]


def _stable(content: Any) -> Any:
    if isinstance(content, str):
        for pattern, mask in _VOLATILE:
            content = pattern.sub(mask, content)
        return content
    if isinstance(content, list):
        return [_stable(c) for c in content]
    if isinstance(content, dict):
        return {k: _stable(v) for k, v in content.items()}
    return content


def request_hash(role: str, model: str, req: Request) -> str:
    """What identifies a request for replay: everything the model reads (where and how fast earlier nodes ran
    excepted), not the sampling settings."""
    content = {
        "role": role, "model": model, "system": _stable(req.system),
        "messages": [{"role": m["role"], "content": _stable(m["content"]),
                      "images": [hashlib.sha256(i).hexdigest() for i in m.get("images") or []]} for m in req.messages],
        "tool": None if req.tool is None else [req.tool.name, req.tool.description, req.tool.parameters],
        "json_schema": req.json_schema,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


class Recorder:
    def __init__(self, run_dir: Path):
        self.dir = run_dir / "llm" / "transcripts"
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, seq: int, key: Key, model: str, req: Request, resp: Response | None, error: str | None,
             req_hash: str | None = None, live: bool = True) -> None:
        step, role, n = key
        data = {"seq": seq, "step": step, "role": role, "n": n, "model": model,
                "request_hash": req_hash or request_hash(role, model, req), "request": _request_json(req),
                "reply": None if resp is None else {
                    "text": resp.text, "tool_input": resp.tool_input, "input_tokens": resp.input_tokens,
                    "output_tokens": resp.output_tokens, "cached_tokens": resp.cached_tokens,
                    "finish_reason": resp.finish_reason},
                "error": error, "replayed": not live}
        write_json(self.dir / f"{seq:06d}-{role}.json", data, indent=1)


class ReplayMiss(EngineError):
    """The recorded run has no reply for this request."""


@dataclass
class _Recorded:
    seq: int
    key: Key
    request: dict[str, Any]
    reply: dict[str, Any]
    hashed: bool
    used: bool = False


class Replayer:
    """Serves a finished run's recorded replies, each to the request it answered."""

    def __init__(self, run_dir: Path):
        folder = Path(run_dir) / "llm" / "transcripts"
        if not folder.is_dir():
            raise EngineError(f"replay.run={run_dir}: no llm/transcripts there; was it run with a model?")
        self.run_dir = Path(run_dir)
        self.by_hash: dict[str, list[_Recorded]] = {}
        self.by_key: dict[Key, _Recorded] = {}  # every reply, by its place; the only index of old transcripts
        self.unhashed = 0
        for f in sorted(folder.glob("*.json")):
            data = read_json(f)
            if not isinstance(data, dict) or not {"reply", "seq", "step", "role", "n", "request"} <= set(data):
                raise EngineError(f"{f}: not a transcript of this engine (seq, step, role, n, request, reply)")
            if data["reply"] is None:
                continue
            rec = _Recorded(data["seq"], (data["step"], data["role"], data["n"]), data["request"], data["reply"],
                            hashed=bool(data.get("request_hash")))
            self.by_key.setdefault(rec.key, rec)
            if data.get("request_hash"):
                self.by_hash.setdefault(data["request_hash"], []).append(rec)
            else:
                self.unhashed += 1
        if self.unhashed:
            log.warning("replay.run=%s: %d replies were recorded before requests were hashed; they are matched by "
                        "(node step, role, call number) alone, so with more than one slot a replayed program may "
                        "go to another parent than in the recorded run", run_dir, self.unhashed)
        self.lock = threading.Lock()

    def reply(self, key: Key, req_hash: str, req: Request | None = None) -> Response:
        """The recorded reply to this request (ReplayMiss when there is none left)."""
        with self.lock:
            rec = self._match(key, req_hash)
            if rec is None:
                raise ReplayMiss(self._miss_message(key, req_hash, req))
            rec.used = True
        data = rec.reply
        return Response(text=data["text"], tool_input=data["tool_input"], input_tokens=data["input_tokens"],
                        output_tokens=data["output_tokens"], cached_tokens=data["cached_tokens"],
                        finish_reason=data["finish_reason"])

    def _match(self, key: Key, req_hash: str) -> _Recorded | None:
        same = [r for r in self.by_hash.get(req_hash, []) if not r.used]
        if same:  # the reply given at this place, else the earliest one recorded for an identical request
            return next((r for r in same if r.key == key), same[0])
        old = self.by_key.get(key)
        if old is not None and not old.used and not old.hashed:
            return old  # recorded before requests were hashed: the place is all there is to go by
        return None

    def _miss_message(self, key: Key, req_hash: str, req: Request | None) -> str:
        step, role, n = key
        where = f"node step {step}, role {role}, call {n}" if step is not None else f"role {role}, call {n}"
        asked = self.by_hash.get(req_hash, [])
        if asked:
            why = f"the recorded run made this request {len(asked)} time(s) and every reply is used"
        else:
            why = "the recorded run never made this request"
            placed = self.by_key.get(key)
            if placed is not None and req is not None:
                why += f"; {_first_difference(placed.request, req)}"
        return (f"replay: the recorded run has no reply for {where}: {why}. A replay needs the recorded run's "
                "template, settings and deterministic experiments (their output goes into later prompts), and with "
                "more than one slot the search may take another path; replay.fallback=live asks the model for such "
                f"requests instead (recorded run: {self.run_dir})")


def _first_difference(recorded: dict[str, Any], req: Request) -> str:
    """Where the request differs from the one recorded at the same place, for the user to see what changed."""
    now = _request_json(req)
    pairs = [("the system prompt", _stable(recorded.get("system") or ""), _stable(now["system"] or ""))]
    for i, (a, b) in enumerate(zip(recorded.get("messages") or [], now["messages"])):
        pairs.append((f"message {i + 1}", json.dumps(_stable(a.get("content"))), json.dumps(_stable(b["content"]))))
        if a.get("image_sha256") != b["image_sha256"]:
            return f"the images of message {i + 1} differ from those recorded at that place"
    for what, a, b in pairs:
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return (f"the request recorded at that place differs in {what} at character {at}: recorded "
                    f"{a[max(0, at - 40):at + 60]!r}, now {b[max(0, at - 40):at + 60]!r}")
    if len(recorded.get("messages") or []) != len(now["messages"]):
        return (f"the request recorded at that place has {len(recorded.get('messages') or [])} messages, "
                f"this one {len(now['messages'])}")
    return "the request recorded at that place differs in its tool or JSON schema"
