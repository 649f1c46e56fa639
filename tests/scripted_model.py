"""An in-process scripted model (a DeterministicModel in the mini-swe-agent sense) for tests of operators,
prompts and phase logic: no socket, no server thread, no SDK HTTP stack.

It takes the same scripts and responders as `FakeLLMServer` (`responder(path, body) -> reply`, the same reply
dicts) and stands in for the OpenAI SDK client inside the engine's own `OpenAIProvider`, so requests are still
built by the engine's provider code and replies still parsed by it, from the very JSON the loopback server would
send. Use the loopback server where the wire format is the point (SDK clients, keys, retries, subprocess runs).
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletion

from engine.llm.loopback import Reply, _openai
from engine.llm.models import ModelSpec, spec_from_dict
from engine.llm.providers import OpenAIProvider

BASE_URL = "http://scripted.invalid/v1"  # never contacted: names the model's place in specs and messages
PATH = "/v1/chat/completions"
ERRORS = {400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
          404: openai.NotFoundError, 429: openai.RateLimitError}


class ScriptedModel:
    """`script` replies are used first, in order; then `responder(path, body)`; then {"text": "ok"}.
    `requests` holds (path, body, headers) like FakeLLMServer's, so assertions read the same."""

    def __init__(self, responder: Callable[[str, dict], Reply] | None = None):
        self.script: list[Reply] = []
        self.requests: list[tuple[str, dict, dict]] = []
        self.responder = responder
        self._lock = threading.Lock()
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))  # the client's shape

    def __enter__(self) -> ScriptedModel:  # the same shape of use as FakeLLMServer's
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def provider(self, spec: ModelSpec | None = None) -> OpenAIProvider:
        """The engine's OpenAI provider around this model (a spec named fake-model by default)."""
        return OpenAIProvider.wrap(spec or spec_from_dict({"name": "fake-model", "base_url": BASE_URL}), self)

    def providers(self, *roles: str, spec: ModelSpec | None = None) -> dict[str, OpenAIProvider]:
        return {role: self.provider(spec) for role in roles}

    def _create(self, **kwargs: Any) -> ChatCompletion:
        body = copy.deepcopy(kwargs)
        with self._lock:
            self.requests.append((PATH, body, {}))
            reply = self.script.pop(0) if self.script else None
        if reply is None:
            reply = self.responder(PATH, body) if self.responder else {"text": "ok"}
        status = reply.get("status", 200)
        if status != 200 or "raw" in reply:
            raise _error(status, reply.get("message", f"fake error {status}"))
        usage = reply.get("usage", {"input": 11, "output": 7, "cached": 0})
        return ChatCompletion.model_validate(_openai(reply, body, usage))


def _error(status: int, message: str) -> openai.APIError:
    """The exception the SDK raises for this status once its retries are spent."""
    response = httpx.Response(status, request=httpx.Request("POST", BASE_URL + "/chat/completions"))
    body = {"error": {"message": message, "type": "api_error"}}
    if status == 200:  # a malformed body
        return openai.APIResponseValidationError(response, body, message=message)
    cls = ERRORS.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    return cls(message, response=response, body=body)
