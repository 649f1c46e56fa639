"""The one call path every phase uses: roles -> models, a concurrency limit of its own, the cost ledger,
transcripts (or replay), one bounded re-ask when a reply cannot be parsed, and clear errors for bad keys."""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

from engine.errors import EngineError
from engine.llm.ledger import CallRecord, Ledger
from engine.llm.models import ModelSpec
from engine.llm.parsing import ParseError, extract_code, extract_json
from engine.llm.providers import Provider, Request, Response, Tool, make_provider
from engine.llm.transcripts import Recorder, Replayer, ReplayMiss, request_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMSettings:
    """llm.* (the defaults are in conf/config.yaml; engine.config.shipped_llm() gives them outside a run)."""

    max_concurrency: int  # calls in flight at once, whatever the number of experiment slots
    max_retries: int  # the SDKs' own retries on 429 / 5xx / connection errors
    timeout_s: float
    reask: int  # re-asks with the parse error when a reply is malformed
    temperature: float
    max_tokens: int


@dataclass(frozen=True)
class CallContext:
    node: str | None = None
    step: int | None = None
    stage: str | None = None


class LLMCallError(RuntimeError):
    """A call that failed after the SDK's retries (rate limits, server errors); costs its node, not the run."""


class Guard(Protocol):
    """The run's budget (engine/budget/guard.py): asked before every live call, told its cost after."""

    phase: str | None

    def reserve(self, role: str, spec: ModelSpec, req: Request) -> int: ...

    def bound(self, spec: ModelSpec, req: Request) -> float | None: ...

    def settle(self, ticket: int, cost_usd: float | None) -> None: ...


class LLM:
    def __init__(self, roles: dict[str, ModelSpec], settings: LLMSettings, env: Mapping[str, str],
                 ledger: Ledger | None = None, recorder: Recorder | None = None, replayer: Replayer | None = None,
                 providers: dict[str, Provider] | None = None, replay_fallback: str = "error",
                 budget: Guard | None = None):
        self.roles, self.settings, self.env, self.budget = roles, settings, env, budget
        self.ledger, self.recorder, self.replayer = ledger, recorder, replayer
        # with a replayer, a request the recorded run never made: "error" stops the run, "live" asks the model
        self.replay_fallback = replay_fallback
        self._providers: dict[str, Provider] = dict(providers or {})  # clients made by the caller, if any
        self._sem = threading.BoundedSemaphore(settings.max_concurrency)
        self._lock = threading.Lock()
        self._counts: dict[tuple[Any, str], int] = {}
        self._warned_prices: set[str] = set()

    def has(self, role: str) -> bool:
        return role in self.roles

    def model_name(self, role: str) -> str:
        return self.roles[role].name

    # -- providers and keys --------------------------------------------------------------------------
    def _key(self, role: str, spec: ModelSpec) -> str:
        if spec.provider in ("bedrock", "vertex"):
            return ""  # those SDKs read their cloud credentials themselves
        key = self.env.get(spec.api_key_env, "")
        if not key and spec.base_url and urlparse(spec.base_url).hostname in ("127.0.0.1", "localhost", "::1"):
            return "none"  # a local server (vLLM, Ollama, llama.cpp) usually wants no key
        if not key:
            raise EngineError(f"role {role}: model {spec.name} needs an API key in ${spec.api_key_env}, which is "
                              f"not set (set it, or choose another variable with model.api_key_env=NAME)")
        return key

    def _provider(self, role: str, timeout_s: float | None = None, retries: int | None = None) -> Provider:
        spec = self.roles[role]
        if timeout_s is not None:
            return make_provider(spec, self._key(role, spec), timeout_s, retries or 0)
        with self._lock:
            if role not in self._providers:
                self._providers[role] = make_provider(spec, self._key(role, spec), self.settings.timeout_s,
                                                      self.settings.max_retries)
            return self._providers[role]

    # -- calls ---------------------------------------------------------------------------------------
    def call(self, role: str, req: Request, ctx: CallContext = CallContext()) -> Response:
        spec = self.roles[role]
        with self._lock:
            n = self._counts.get((ctx.step, role), 0)
            self._counts[(ctx.step, role)] = n + 1
        key = (ctx.step, role, n)
        seq = self.ledger.next_seq() if self.ledger else n
        req_hash = request_hash(role, spec.name, req)
        start, resp, error, live = time.monotonic(), None, None, self.replayer is None
        ticket, unbilled, refused = None, True, False
        try:
            if self.replayer is not None:
                try:
                    resp = self.replayer.reply(key, req_hash, req)
                    return resp
                except ReplayMiss as miss:
                    if self.replay_fallback != "live":
                        raise
                    live = True
                    log.warning("%s\nreplay.fallback=live: asking model %s instead", miss, spec.name)
            if self.budget is not None:
                refused = True  # until the budget lets it through (BudgetExhausted: the call is not made)
                ticket = self.budget.reserve(role, spec, req)
                refused = False
            with self._sem:
                resp = self._provider(role).complete(req)
            return resp
        except Exception as e:  # noqa: BLE001 - recorded, then raised as the right kind
            error = f"{type(e).__name__}: {e}"
            unbilled = not _maybe_billed(e)
            raise self._translate(role, spec, e) from e
        finally:
            if not refused:  # a call the budget refused was never made
                cost = self._record(seq, key, role, spec, req, resp, error, time.monotonic() - start, ctx, req_hash,
                                    live, estimate=None if unbilled or self.budget is None else
                                    self.budget.bound(spec, req))
                if ticket is not None:
                    self.budget.settle(ticket, cost)

    def _record(self, seq: int, key: tuple, role: str, spec: ModelSpec, req: Request, resp: Response | None,
                error: str | None, latency: float, ctx: CallContext, req_hash: str | None = None,
                live: bool = True, estimate: float | None = None) -> float | None:
        """Transcript and ledger row of a call; returns its cost (`estimate`: a call that failed without a reply
        but may have been billed, counted at its bound)."""
        if self.recorder is not None:
            self.recorder.save(seq, key, spec.name, req, resp, error, req_hash, live)
        tokens = (resp.input_tokens, resp.output_tokens, resp.cached_tokens) if resp else (0, 0, 0)
        cost = spec.prices.cost(*tokens) if resp else (estimate or 0.0)
        if self.ledger is None:
            return cost
        if resp is not None and cost is None and spec.name not in self._warned_prices:
            self._warned_prices.add(spec.name)
            log.warning("no price known for model %s: its cost is reported as unknown (null), not zero; add "
                        "prices to its conf/model file or model.prices.input=... model.prices.output=...",
                        spec.name)
        self.ledger.append(CallRecord(
            run=self.ledger.run, seq=seq, node=ctx.node, step=ctx.step, stage=ctx.stage, role=role,
            model=spec.name, provider=spec.provider, input_tokens=tokens[0], output_tokens=tokens[1],
            cached_tokens=tokens[2], cost_usd=cost, latency_s=round(latency, 3), ok=resp is not None,
            error=error, replayed=not live, time=time.time(), phase=self.budget.phase if self.budget else None,
            cost_estimated=resp is None and bool(estimate)))
        return cost

    def _translate(self, role: str, spec: ModelSpec, e: Exception) -> Exception:
        where = spec.base_url or spec.provider
        # the SDKs' error classes, of the SDKs already imported (an error can only come from one that is): importing
        # the other one here would cost seconds between the answer and the message
        sdks = [sys.modules[name] for name in ("openai", "anthropic") if name in sys.modules]
        if isinstance(e, tuple(c for m in sdks for c in (m.AuthenticationError, m.PermissionDeniedError))):
            return EngineError(f"role {role}: {where} rejected the key in ${spec.api_key_env} for model "
                               f"{spec.name}: {_message(e)}")
        if isinstance(e, tuple(m.NotFoundError for m in sdks)):
            return EngineError(f"role {role}: {where} does not know model {spec.name!r}: {_message(e)}")
        if isinstance(e, (EngineError, LLMCallError)):
            return e
        return LLMCallError(f"role {role}, model {spec.name}: {type(e).__name__}: {_message(e)}")

    def ask(self, role: str, system: str, messages: list[dict[str, Any]], ctx: CallContext = CallContext(),
            **kw: Any) -> Response:
        req = Request(system=system, messages=messages, temperature=kw.pop("temperature", self.settings.temperature),
                      max_tokens=kw.pop("max_tokens", self.settings.max_tokens), **kw)
        return self.call(role, req, ctx)

    def ask_code(self, role: str, system: str, messages: list[dict[str, Any]],
                 ctx: CallContext = CallContext(), check: Callable[[str], None] | None = None) -> tuple[str, str]:
        """(reply text, the program in it); re-asks with the problem when there is no compiling program, or
        when `check` (given the reply text) raises ParseError."""
        def parse(r: Response) -> str:
            if check is not None:
                check(r.text)
            return extract_code(r.text)

        return self._with_reask(role, system, messages, ctx, parse, tool=None)

    def ask_json(self, role: str, system: str, messages: list[dict[str, Any]], tool: Tool,
                 ctx: CallContext = CallContext()) -> dict[str, Any]:
        """A structured answer: a forced tool call where the model supports it, else JSON in the reply."""
        spec = self.roles[role]

        def parse(r: Response) -> dict[str, Any]:
            data = r.tool_input if r.tool_input is not None else extract_json(r.text)
            missing = [k for k in tool.parameters.get("required", []) if k not in data]
            if missing:
                raise ParseError(f"the answer lacks the fields {missing}")
            return data

        if spec.tool_calling:
            return self._with_reask(role, system, messages, ctx, parse, tool=tool)[1]
        schema_hint = (f"\n\nReply with one ```json block holding an object with these fields (JSON schema):\n"
                       f"{tool.parameters}")
        return self._with_reask(role, system + schema_hint, messages, ctx, parse, tool=None,
                                json_schema=tool.parameters)[1]

    def _with_reask(self, role: str, system: str, messages: list[dict[str, Any]], ctx: CallContext, parse,
                    **kw: Any) -> tuple[str, Any]:
        convo = list(messages)
        for attempt in range(self.settings.reask + 1):
            resp = self.ask(role, system, convo, ctx, **kw)
            try:
                return resp.text, parse(resp)
            except (ParseError, ValueError, TypeError) as e:
                if attempt == self.settings.reask:
                    raise LLMCallError(f"role {role}: the reply could not be used after {attempt + 1} tries: {e}") \
                        from None
                cut = " Your reply was cut off at the length limit: be shorter." if resp.finish_reason in (
                    "length", "max_tokens") else ""
                convo = convo + [{"role": "assistant", "content": resp.text or str(resp.tool_input)},
                                 {"role": "user", "content": f"That reply could not be used: {e}.{cut} "
                                                             "Answer again, in the requested format."}]
        raise AssertionError("unreachable")

    # -- fail fast -----------------------------------------------------------------------------------
    def preflight(self, timeout_s: float = 15.0) -> None:
        """One cheap call per distinct model, before any work: a missing or rejected key, an unknown model or an
        unreachable server ends the run within seconds, naming the role and the variable."""
        if self.replayer is not None and self.replay_fallback != "live":
            return
        checked: set[tuple] = set()
        for role, spec in self.roles.items():
            ident = (spec.provider, spec.name, spec.base_url, spec.api_key_env)
            if ident in checked:
                continue
            checked.add(ident)
            provider = self._provider(role, timeout_s=timeout_s, retries=1)
            try:
                provider.complete(Request(system="", messages=[{"role": "user", "content": "Reply with OK."}],
                                          max_tokens=8))
            except Exception as e:  # noqa: BLE001 - every failure here is a configuration problem
                err = self._translate(role, spec, e)
                if isinstance(err, EngineError):
                    raise err from None
                raise EngineError(f"role {role}: the check call to model {spec.name} at "
                                  f"{spec.base_url or spec.provider} failed: {err}") from None
            log.info("model check: role %s -> %s (%s) answers", role, spec.name, spec.base_url or spec.provider)


def _maybe_billed(e: Exception) -> bool:
    """A call that failed without a reply but may have been billed: the request reached the provider and then the
    connection was lost or timed out. An error status (a 429, a 500) is not billed, nor a connection never made."""
    sdks = [sys.modules[name] for name in ("openai", "anthropic") if name in sys.modules]
    if not isinstance(e, tuple(m.APIConnectionError for m in sdks)):  # (their timeout errors are of this kind)
        return False
    return type(e.__cause__).__name__ not in ("ConnectError", "ConnectTimeout")  # the HTTP client's own errors


def _message(e: Exception) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(e).splitlines()[0][:300]

