"""A loopback HTTP server that speaks the OpenAI chat-completions and Anthropic messages wire formats.

The tests and the benchmarks (benchmarks/fail_fast.py, benchmarks/faults/) drive the real SDK clients against it;
it ships in the package so that the benchmarks run from an installed wheel. Each request is answered by the next
scripted reply, or by a `responder(path, body) -> reply` function. A reply is a dict:
    {"text": "..."}                                   a normal answer
    {"tool": {"name": "...", "input": {...}}}         a tool call (function call)
    {"status": 429}, {"status": 500}, {"status": 401}  an error in the provider's own error format
    {"raw": "not json", "status": 200}                a malformed body
optionally with "usage": {"input": 10, "output": 5, "cached": 0}.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = dict[str, Any]


class _Handler(BaseHTTPRequestHandler):
    """Answers for the FakeLLMServer that owns the HTTP server (`self.server.owner`)."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802
        owner: FakeLLMServer = self.server.owner  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with owner._lock:
            owner.requests.append((self.path, body, {k.lower(): v for k, v in self.headers.items()}))
            reply = owner.script.pop(0) if owner.script else None
        anthropic = self.path.rstrip("/").endswith("/messages")
        key = self.headers.get("x-api-key") or self.headers.get("Authorization", "").removeprefix("Bearer ")
        if reply is None and key != owner.api_key:
            reply = {"status": 401}
        if reply is None:
            reply = owner.responder(self.path, body) if owner.responder else {"text": "ok"}
        self._answer(reply, body, anthropic)

    def _answer(self, reply: Reply, body: dict, anthropic: bool) -> None:
        status = reply.get("status", 200)
        if "raw" in reply:
            raw = reply["raw"].encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        if status != 200:
            kinds = {401: "authentication_error", 429: "rate_limit_error", 500: "api_error",
                     404: "not_found_error", 400: "invalid_request_error"}
            message = reply.get("message", f"fake error {status}")
            err = ({"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}
                   if anthropic else {"error": {"message": message, "type": kinds.get(status, "api_error"),
                                                "code": "invalid_api_key" if status == 401 else None}})
            self._send(status, err, {"retry-after": "0"} if status == 429 else None)
            return
        usage = reply.get("usage", {"input": 11, "output": 7, "cached": 0})
        self._send(200, _anthropic(reply, body, usage) if anthropic else _openai(reply, body, usage))

    def _send(self, status: int, obj: Any, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class FakeLLMServer:
    def __init__(self, responder: Callable[[str, dict], Reply] | None = None, api_key: str = "test-key"):
        self.script: list[Reply] = []
        self.requests: list[tuple[str, dict, dict]] = []  # (path, body, headers)
        self.responder = responder
        self.api_key = api_key
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        # a short poll: shutdown() waits for the serving loop to look again (0.5 s by default, paid by every test)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeLLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _openai(reply: Reply, body: dict, usage: dict) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("text")}
    finish = reply.get("finish", "stop")
    if "tool" in reply:
        message["content"] = None
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": {
            "name": reply["tool"]["name"], "arguments": json.dumps(reply["tool"]["input"])}}]
        finish = "tool_calls"
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": usage["input"], "completion_tokens": usage["output"],
                      "total_tokens": usage["input"] + usage["output"],
                      "prompt_tokens_details": {"cached_tokens": usage.get("cached", 0)}}}


def _anthropic(reply: Reply, body: dict, usage: dict) -> dict:
    content: list[dict] = []
    stop = reply.get("finish", "end_turn")
    if reply.get("text") is not None:
        content.append({"type": "text", "text": reply["text"]})
    if "tool" in reply:
        content.append({"type": "tool_use", "id": "toolu_fake", "name": reply["tool"]["name"],
                        "input": reply["tool"]["input"]})
        stop = "tool_use"
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": usage["input"], "output_tokens": usage["output"],
                      "cache_read_input_tokens": usage.get("cached", 0), "cache_creation_input_tokens": 0}}
