"""Record every call's request and reply; replay them later with no API call at all.

Replies are keyed by (node step, role, n-th call of that role for that node), so a replayed search gets the
same programs byte for byte even though its experiments are re-executed and may finish in another order.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.llm.providers import Request, Response

Key = tuple[Any, str, int]


def _request_json(req: Request) -> dict[str, Any]:
    return {"system": req.system, "max_tokens": req.max_tokens, "temperature": req.temperature,
            "tool": None if req.tool is None else req.tool.name,
            "messages": [{"role": m["role"], "content": m["content"], "images": len(m.get("images") or [])}
                         for m in req.messages]}


class Recorder:
    def __init__(self, run_dir: Path):
        self.dir = run_dir / "llm" / "transcripts"
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, seq: int, key: Key, model: str, req: Request, resp: Response | None, error: str | None) -> None:
        step, role, n = key
        data = {"seq": seq, "step": step, "role": role, "n": n, "model": model, "request": _request_json(req),
                "reply": None if resp is None else {
                    "text": resp.text, "tool_input": resp.tool_input, "input_tokens": resp.input_tokens,
                    "output_tokens": resp.output_tokens, "cached_tokens": resp.cached_tokens,
                    "finish_reason": resp.finish_reason},
                "error": error}
        (self.dir / f"{seq:06d}-{role}.json").write_text(json.dumps(data, indent=1))


class Replayer:
    """Serves a finished run's recorded replies."""

    def __init__(self, run_dir: Path):
        folder = Path(run_dir) / "llm" / "transcripts"
        if not folder.is_dir():
            raise EngineError(f"replay.run={run_dir}: no llm/transcripts there; was it run with a model?")
        self.replies: dict[Key, dict[str, Any]] = {}
        for f in sorted(folder.glob("*.json")):
            data = json.loads(f.read_text())
            if data["reply"] is not None:
                self.replies[(data["step"], data["role"], data["n"])] = data["reply"]
        self.lock = threading.Lock()

    def reply(self, key: Key) -> Response:
        with self.lock:
            data = self.replies.get(key)
        if data is None:
            step, role, n = key
            raise EngineError(f"replay: the recorded run has no reply for node step {step}, role {role}, call {n}; "
                              "replay needs the same search settings (search.*, stages) as the recorded run")
        return Response(text=data["text"], tool_input=data["tool_input"], input_tokens=data["input_tokens"],
                        output_tokens=data["output_tokens"], cached_tokens=data["cached_tokens"],
                        finish_reason=data["finish_reason"])
