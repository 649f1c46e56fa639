"""The request each model family of conf/model/ gets, through the real SDKs against the loopback server: the
registry's entries as shipped (OpenAI's and Anthropic's own endpoints are reached through the SDKs' base-URL
variables), so a quirk the call path stops honouring fails here."""
import dataclasses

import pytest

from engine.config import shipped_llm
from engine.llm.models import load_registered, spec_from_dict
from engine.llm.providers import Tool
from engine.llm.service import LLM
from tests.fake_llm_server import FakeLLMServer

TOOL = Tool("report", "Report the verdict.", {"type": "object", "properties": {
    "is_bug": {"type": "boolean"}, "analysis": {"type": "string"}}, "required": ["is_bug", "analysis"]})
KEYS = {"OPENAI_API_KEY": "test-key", "ANTHROPIC_API_KEY": "test-key", "GEMINI_API_KEY": "test-key",
        "DEEPSEEK_API_KEY": "test-key"}


def ask(spec, server, tool=False, env=KEYS):
    llm = LLM({"code": spec}, shipped_llm(max_retries=0, timeout_s=10, max_tokens=4000, temperature=0.7), env)
    if tool:
        server.script = [{"tool": {"name": "report", "input": {"is_bug": False, "analysis": "ok"}}}]
        llm.ask_json("code", "judge", [{"role": "user", "content": "x"}], TOOL)
    else:
        llm.ask("code", "be brief", [{"role": "user", "content": "hi"}])
    return server.requests[-1][1]


@pytest.fixture
def server(monkeypatch):
    with FakeLLMServer() as s:
        monkeypatch.setenv("OPENAI_BASE_URL", s.base_url)  # OpenAI's own API (base_url null in the registry)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", s.anthropic_url)
        yield s


@pytest.mark.parametrize("name, effort", [("gpt-5.5", "medium"), ("gpt-5.4-mini", "low")])
def test_openai_reasoning_models_get_max_completion_tokens_an_effort_and_no_temperature(server, name, effort):
    body = ask(load_registered(name), server)
    assert body["model"] == name and body["max_completion_tokens"] == 4000 and body["reasoning_effort"] == effort
    assert "max_tokens" not in body and "temperature" not in body
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_an_older_openai_model_keeps_its_temperature(server):
    body = ask(load_registered("gpt-4o"), server)
    assert body["temperature"] == 0.7 and body["max_completion_tokens"] == 4000 and "reasoning_effort" not in body


@pytest.mark.parametrize("name", ["claude-opus-5", "claude-opus-5-5"])
def test_anthropic_adaptive_thinking_sends_no_temperature_and_offers_the_tool(server, name):
    body = ask(load_registered(name), server, tool=True)
    assert body["model"] == name and body["thinking"] == {"type": "adaptive"} and body["max_tokens"] == 4000
    assert "temperature" not in body and "budget_tokens" not in body["thinking"]
    assert body["tool_choice"] == {"type": "auto"} and body["tools"][0]["name"] == "report"


def test_anthropic_without_thinking_forces_the_tool_and_takes_a_temperature(server):
    body = ask(load_registered("claude-haiku-4-5"), server, tool=True)
    assert body["model"] == "claude-haiku-4-5-20251001" and "thinking" not in body and body["temperature"] == 0.7
    assert body["tool_choice"] == {"type": "tool", "name": "report"}


def test_anthropic_budgeted_thinking_adds_its_budget_to_the_output_limit(server):
    spec = dataclasses.replace(load_registered("claude-haiku-4-5"),
                               quirks={"temperature": True, "thinking": "enabled", "thinking_budget": 2048})
    body = ask(spec, server)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048} and body["max_tokens"] == 4000 + 2048
    assert "temperature" not in body


def test_gemini_through_its_openai_endpoint(server):
    shipped = load_registered("gemini-3.8-flash")
    assert shipped.base_url == "https://generativelanguage.googleapis.com/v1beta/openai/"
    body = ask(dataclasses.replace(shipped, base_url=server.base_url), server)
    assert body["model"] == "gemini-3.8-flash" and body["max_tokens"] == 4000
    assert "max_completion_tokens" not in body and "temperature" not in body
    assert server.requests[-1][2]["authorization"] == "Bearer test-key"  # $GEMINI_API_KEY


def test_deepseek_reasoner_takes_no_temperature_and_answers_json_without_tools(server):
    shipped = load_registered("deepseek-reasoner")
    server.script = [{"text": '```json\n{"is_bug": false, "analysis": "ok"}\n```'}]
    llm = LLM({"code": dataclasses.replace(shipped, base_url=server.base_url)},
              shipped_llm(max_retries=0, timeout_s=10, max_tokens=4000), KEYS)
    assert llm.ask_json("code", "judge", [{"role": "user", "content": "x"}], TOOL) == {"is_bug": False,
                                                                                        "analysis": "ok"}
    body = server.requests[-1][1]
    assert "temperature" not in body and "tools" not in body and body["max_tokens"] == 4000


@pytest.mark.parametrize("preset, port", [("vllm", 8000), ("ollama", 11434), ("llamacpp", 8080)])
def test_local_server_presets_cost_nothing_and_need_no_key(preset, port):
    from omegaconf import OmegaConf

    from engine.llm.models import MODEL_DIR

    raw = OmegaConf.to_container(OmegaConf.load(MODEL_DIR / f"{preset}.yaml"))
    assert raw["base_url"] == f"http://localhost:{port}/v1" and raw["name"] is None
    with FakeLLMServer(api_key="none") as local:  # what the engine sends a server on localhost without a key
        spec = spec_from_dict(raw | {"name": "my-model", "base_url": local.base_url})
        assert spec.prices.cost(10**6, 10**6, 0) == 0.0
        body = ask(spec, local, env={})
    assert body["model"] == "my-model" and body["max_tokens"] == 4000 and body["temperature"] == 0.7
