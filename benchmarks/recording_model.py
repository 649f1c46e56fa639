"""A model that records what it is sent: an OpenAI-compatible chat-completions server on 127.0.0.1 that keeps every
request body and answers each with `reply(body) -> str`. The injection benchmark points the reviewer at it (with
--base-url) to see which text reaches a model; it is not a model of anything and decides nothing."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingModel:
    def __init__(self, reply: Callable[[dict[str, Any]], str]):
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._send(200, {"object": "list", "data": [{"id": "recorder", "object": "model"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with model._lock:
                    model.requests.append(body)
                self._send(200, {
                    "id": "chatcmpl-recorder", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": model.reply(body)}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def sent(self, since: int = 0) -> str:
        """Everything sent in requests[since:] (system prompts and messages), as one text."""
        with self._lock:
            bodies = self.requests[since:]
        return "\n".join(str(m.get("content")) for body in bodies for m in body.get("messages", []))

    def __enter__(self) -> RecordingModel:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
