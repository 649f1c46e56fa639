"""One request shape, two official SDKs: OpenAI (and every OpenAI-compatible server) and Anthropic
(direct, Bedrock, Vertex). Retries on 429/5xx are the SDKs' own, capped by `max_retries`."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.llm.models import ModelSpec


@dataclass(frozen=True)
class Tool:
    """A function the model must call; its arguments are the structured answer."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema


@dataclass
class Request:
    system: str
    messages: list[dict[str, Any]]  # {"role": "user"|"assistant", "content": str, "images": [png bytes]}
    max_tokens: int = 4096
    temperature: float | None = None
    tool: Tool | None = None  # force this tool call
    json_schema: dict[str, Any] | None = None  # structured output, for models that support it


@dataclass
class Response:
    text: str
    tool_input: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    def complete(self, req: Request) -> Response: ...


class OpenAIProvider:
    def __init__(self, spec: ModelSpec, api_key: str, timeout_s: float, max_retries: int):
        import openai

        self.spec = spec
        self.client = openai.OpenAI(api_key=api_key, base_url=spec.base_url, timeout=timeout_s,
                                    max_retries=max_retries)

    @classmethod
    def wrap(cls, spec: ModelSpec, client: Any) -> OpenAIProvider:
        """Around a client the caller made."""
        self = cls.__new__(cls)
        self.spec, self.client = spec, client
        return self

    def complete(self, req: Request) -> Response:
        spec = self.spec
        messages: list[dict[str, Any]] = []
        if req.system:
            # o-series models take no system message: it becomes the first user turn
            messages.append({"role": "system" if spec.system_message else "user", "content": req.system})
        for m in req.messages:
            content: Any = m["content"]
            if m.get("images"):
                content = [{"type": "text", "text": m["content"]}] + [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," +
                                                       base64.b64encode(img).decode()}} for img in m["images"]]
            messages.append({"role": m["role"], "content": content})
        kwargs: dict[str, Any] = {"model": spec.name, "messages": messages}
        # OpenAI's own API wants max_completion_tokens (reasoning models require it: it bounds their reasoning
        # tokens too); compatible servers know max_tokens
        param = spec.quirks.get("max_tokens_param") or ("max_completion_tokens" if spec.base_url is None
                                                         else "max_tokens")
        kwargs[param] = spec.output_limit(req.max_tokens)
        temperature = spec.fixed_temperature if spec.fixed_temperature is not None else req.temperature
        if temperature is not None and spec.takes_temperature:
            kwargs["temperature"] = temperature
        if spec.reasoning_effort:
            kwargs["reasoning_effort"] = spec.reasoning_effort
        if req.tool is not None:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": req.tool.name, "description": req.tool.description, "parameters": req.tool.parameters}}]
            kwargs["tool_choice"] = {"type": "function", "function": {"name": req.tool.name}}
        elif req.json_schema is not None and spec.structured_output:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": req.json_schema}}
        resp = self.client.chat.completions.create(**kwargs)
        choice = resp.choices[0]
        tool_input = None
        if choice.message.tool_calls:
            tool_input = json.loads(choice.message.tool_calls[0].function.arguments)
        usage = resp.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        return Response(text=choice.message.content or "", tool_input=tool_input,
                        input_tokens=usage.prompt_tokens if usage else 0,
                        output_tokens=usage.completion_tokens if usage else 0,
                        cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
                        finish_reason=choice.finish_reason, raw=resp.model_dump(mode="json"))


class AnthropicProvider:
    def __init__(self, spec: ModelSpec, api_key: str, timeout_s: float, max_retries: int):
        import anthropic

        self.spec = spec
        common = {"timeout": timeout_s, "max_retries": max_retries}
        if spec.provider == "bedrock":
            self.client = anthropic.AnthropicBedrock(**common)
        elif spec.provider == "vertex":
            self.client = anthropic.AnthropicVertex(**common)
        else:
            self.client = anthropic.Anthropic(api_key=api_key, base_url=spec.base_url, **common)

    @classmethod
    def wrap(cls, spec: ModelSpec, client: Any) -> AnthropicProvider:
        """Around a client the caller made."""
        self = cls.__new__(cls)
        self.spec, self.client = spec, client
        return self

    def complete(self, req: Request) -> Response:
        spec = self.spec
        messages = []
        for m in req.messages:
            content: Any = m["content"]
            if m.get("images"):
                content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                        "data": base64.b64encode(img).decode()}}
                           for img in m["images"]] + [{"type": "text", "text": m["content"]}]
            messages.append({"role": m["role"], "content": content})
        kwargs: dict[str, Any] = {"model": spec.name, "messages": messages,
                                  "max_tokens": spec.output_limit(req.max_tokens)}
        if req.system:
            kwargs["system"] = req.system
        thinking = spec.thinking
        if thinking == "adaptive":
            kwargs["thinking"] = {"type": "adaptive"}
        elif thinking == "enabled":  # the older form: a fixed budget within max_tokens (refused by the newest models)
            kwargs["thinking"] = {"type": "enabled", "budget_tokens": int(spec.quirks["thinking_budget"])}
        temperature = spec.fixed_temperature if spec.fixed_temperature is not None else req.temperature
        if temperature is not None and spec.takes_temperature and thinking is None:
            # recent SDKs no longer list temperature (newer models fix it); older models still take it
            kwargs["extra_body"] = {"temperature": temperature}
        if req.tool is not None:
            kwargs["tools"] = [{"name": req.tool.name, "description": req.tool.description,
                                "input_schema": req.tool.parameters}]
            # with thinking, a forced tool choice is refused: the model is offered the tool (and the reply's JSON
            # is the fallback answer)
            kwargs["tool_choice"] = {"type": "auto"} if thinking else {"type": "tool", "name": req.tool.name}
        resp = self.client.messages.create(**kwargs)
        text = "".join(block.text for block in resp.content if block.type == "text")
        tool_input = next((dict(block.input) for block in resp.content if block.type == "tool_use"), None)
        usage = resp.usage
        return Response(text=text, tool_input=tool_input, input_tokens=usage.input_tokens,
                        output_tokens=usage.output_tokens,
                        cached_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
                        finish_reason=resp.stop_reason, raw=resp.model_dump(mode="json"))


def make_provider(spec: ModelSpec, api_key: str, timeout_s: float, max_retries: int) -> Provider:
    if spec.provider == "openai":
        return OpenAIProvider(spec, api_key, timeout_s, max_retries)
    return AnthropicProvider(spec, api_key, timeout_s, max_retries)
