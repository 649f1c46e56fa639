"""The real OpenAI and Anthropic SDK clients against a loopback server speaking their wire formats."""
import base64

import pytest

from engine.config import shipped_llm
from engine.errors import EngineError
from engine.llm.ledger import Ledger, cost_summary
from engine.llm.models import Prices, load_registered, resolve_roles, spec_from_dict
from engine.llm.parsing import ParseError, extract_code, extract_json
from engine.llm.providers import Tool
from engine.llm.service import LLM, CallContext, LLMCallError
from engine.llm.transcripts import Recorder, Replayer
from tests.fake_llm_server import FakeLLMServer

TOOL = Tool("report", "Report the verdict.", {"type": "object", "properties": {
    "is_bug": {"type": "boolean"}, "analysis": {"type": "string"}}, "required": ["is_bug", "analysis"]})
ENV = {"OPENAI_API_KEY": "test-key", "ANTHROPIC_API_KEY": "test-key"}


@pytest.fixture
def server():
    with FakeLLMServer() as s:
        yield s


def make(server, provider="openai", run_dir=None, env=ENV, **spec_kw):
    url = server.base_url if provider == "openai" else server.anthropic_url
    spec = spec_from_dict({"name": "fake-model", "provider": provider, "base_url": url,
                           "prices": {"input": 1.0, "output": 2.0, "cached_input": 0.5}} | spec_kw)
    ledger = Ledger(run_dir, "test") if run_dir else None
    recorder = Recorder(run_dir) if run_dir else None
    settings = shipped_llm(max_retries=2, timeout_s=10)
    return LLM({"code": spec, "feedback": spec}, settings, env, ledger, recorder)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_text_call_usage_and_cost(server, tmp_path, provider):
    server.script = [{"text": "hello", "usage": {"input": 1000, "output": 500, "cached": 200}}]
    llm = make(server, provider, tmp_path)
    resp = llm.ask("code", "be brief", [{"role": "user", "content": "hi"}], CallContext("n1", 3, "initial"))
    assert resp.text == "hello" and (resp.input_tokens, resp.output_tokens, resp.cached_tokens) == (1000, 500, 200)
    path, body, headers = server.requests[0]
    if provider == "openai":
        assert path == "/v1/chat/completions" and body["messages"][0] == {"role": "system", "content": "be brief"}
        assert headers["authorization"] == "Bearer test-key"
    else:
        assert path == "/v1/messages" and body["system"] == "be brief"
        assert "test-key" in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    [row] = Ledger(tmp_path, "test").rows()
    assert row["cost_usd"] == pytest.approx((800 * 1.0 + 200 * 0.5 + 500 * 2.0) / 1e6)
    assert (row["node"], row["step"], row["stage"], row["role"], row["ok"]) == ("n1", 3, "initial", "code", True)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_forced_tool_call_gives_structured_answer(server, provider):
    server.script = [{"tool": {"name": "report", "input": {"is_bug": True, "analysis": "NaN loss"}}}]
    llm = make(server, provider)
    assert llm.ask_json("feedback", "judge", [{"role": "user", "content": "x"}], TOOL) == \
        {"is_bug": True, "analysis": "NaN loss"}
    body = server.requests[0][1]
    if provider == "openai":
        assert body["tool_choice"] == {"type": "function", "function": {"name": "report"}}
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "report"}


def test_fenced_json_when_the_model_has_no_tool_calling(server):
    server.script = [{"text": 'Sure.\n```json\n{"is_bug": false, "analysis": "fine"}\n```'}]
    llm = make(server, tool_calling=False)
    assert llm.ask_json("feedback", "judge", [{"role": "user", "content": "x"}], TOOL)["analysis"] == "fine"
    assert "tools" not in server.requests[0][1]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_429_then_success_is_retried_by_the_sdk(server, provider):
    server.script = [{"status": 429}, {"text": "after the rate limit"}]
    assert make(server, provider).ask("code", "", [{"role": "user", "content": "x"}]).text == "after the rate limit"
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_server_errors_end_after_capped_retries(server, tmp_path, provider):
    server.script = [{"status": 500}] * 3
    with pytest.raises(LLMCallError, match="InternalServerError"):
        make(server, provider, tmp_path).ask("code", "", [{"role": "user", "content": "x"}])
    assert len(server.requests) == 3  # one call + max_retries=2
    [row] = Ledger(tmp_path, "test").rows()
    assert row["ok"] is False and "InternalServerError" in row["error"]


def test_malformed_body_is_a_call_error(server):
    server.script = [{"raw": "{not json"}] * 3
    with pytest.raises(LLMCallError):
        make(server).ask("code", "", [{"role": "user", "content": "x"}])


def test_truncated_code_is_asked_again_with_the_problem(server):
    server.script = [{"text": "```python\nimport os\nfor i in range(", "finish": "length"},
                     {"text": "Here:\n```python\nprint('whole')\n```"}]
    text, code = make(server).ask_code("code", "write code", [{"role": "user", "content": "task"}])
    assert code == "print('whole')\n"
    second = server.requests[1][1]["messages"]
    assert "does not compile" in second[-1]["content"] and "cut off" in second[-1]["content"]


@pytest.mark.parametrize("provider, var", [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_wrong_key_fails_fast_naming_the_variable(server, provider, var):
    llm = make(server, provider, env={var: "wrong"})
    with pytest.raises(EngineError, match=rf"role code: .* rejected the key in \${var}"):
        llm.preflight()
    assert len(server.requests) == 1  # fast: one check call, a rejected key is not retried


def test_missing_key_and_unknown_model(server):
    with pytest.raises(EngineError, match=r"needs an API key in \$OPENAI_API_KEY"):
        make(server, env={}, base_url="https://api.example.invalid/v1").preflight()
    server.script = [{"status": 404, "message": "model 'fake-model' does not exist"}]
    with pytest.raises(EngineError, match="does not know model 'fake-model'"):
        make(server).preflight()


def test_unknown_price_is_null_not_zero(server, tmp_path, caplog):
    llm = make(server, run_dir=tmp_path, prices={"input": None, "output": None})
    llm.ask("code", "", [{"role": "user", "content": "x"}])
    [row] = Ledger(tmp_path, "test").rows()
    assert row["cost_usd"] is None and "no price known" in caplog.text
    assert cost_summary(Ledger(tmp_path, "test").rows())["cost_usd"] is None


def test_record_then_replay_without_calls(server, tmp_path):
    server.script = [{"text": "```python\nprint(1)\n```"}, {"text": "```python\nprint(2)\n```"}]
    llm = make(server, run_dir=tmp_path)
    first = [llm.ask_code("code", "s", [{"role": "user", "content": "t"}], CallContext(step=s))[1] for s in (0, 1)]
    replay = LLM(llm.roles, llm.settings, {}, None, None, Replayer(tmp_path))
    n_requests = len(server.requests)
    assert [replay.ask_code("code", "s", [{"role": "user", "content": "t"}], CallContext(step=s))[1]
            for s in (1, 0)] == first[::-1]
    assert len(server.requests) == n_requests
    with pytest.raises(EngineError, match="no reply for node step 7"):
        replay.ask("code", "s", [{"role": "user", "content": "t"}], CallContext(step=7))


def test_registry_and_roles():
    spec = load_registered("o3-mini")
    assert not spec.system_message and spec.fixed_temperature == 1.0 and spec.prices.input == 1.10
    assert load_registered("deepseek-reasoner").takes_temperature is False
    roles = resolve_roles({"name": "m", "base_url": "http://127.0.0.1:1/v1"}, {"feedback": "gpt-4o-mini"})
    assert roles["code"].provider == "openai" and roles["code"].base_url == "http://127.0.0.1:1/v1"
    assert roles["feedback"].name == "gpt-4o-mini-2024-07-18"
    assert resolve_roles({"name": None}, {}) == {}
    with pytest.raises(EngineError, match="no model named 'gpt-9'"):
        resolve_roles({"name": "m"}, {"code": "gpt-9"})
    assert Prices(1.0, 2.0, None).cost(100, 10, 50) == pytest.approx((100 * 1.0 + 10 * 2.0) / 1e6)


def test_o_series_quirks_reach_the_wire(server):
    llm = make(server, quirks={"system_message": False, "temperature": False, "fixed_temperature": 1.0})
    llm.ask("code", "sys", [{"role": "user", "content": "x"}], temperature=0.2)
    body = server.requests[0][1]
    assert body["messages"][0]["role"] == "user" and "temperature" not in body


def test_extract_code_and_json():
    text = "Plan.\n```bash\npip install x\n```\n```python\nimport os\nprint(os.sep)\n```\n```\nnot code(\n```"
    assert extract_code(text) == "import os\nprint(os.sep)\n"
    assert extract_code("```py\nx = 1\n```") == "x = 1\n"
    assert extract_code("x = 1\ny = x + 1") == "x = 1\ny = x + 1\n"
    assert extract_code("```python\nx = 1\n") == "x = 1\n"  # truncated but complete
    with pytest.raises(ParseError, match="does not compile"):
        extract_code("```python\ndef f(:\n```")
    assert extract_json('noise {"a": [1, 2]} tail') == {"a": [1, 2]}
    with pytest.raises(ParseError):
        extract_json("no json here")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_images_reach_vision_models_in_each_wire_format(server, provider):
    png = b"\x89PNG\r\n\x1a\nfake"
    make(server, provider).ask("code", "", [{"role": "user", "content": "judge this plot", "images": [png]}])
    content = server.requests[0][1]["messages"][-1]["content"]
    if provider == "openai":
        assert content[0] == {"type": "text", "text": "judge this plot"}
        assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()
    else:
        assert content[0]["type"] == "image" and content[0]["source"]["media_type"] == "image/png"
        assert base64.b64decode(content[0]["source"]["data"]) == png
        assert content[-1] == {"type": "text", "text": "judge this plot"}


def test_structured_output_uses_a_json_schema_where_supported(server):
    server.script = [{"text": '{"is_bug": true, "analysis": "diverged"}'}]
    llm = make(server, tool_calling=False, structured_output=True)
    assert llm.ask_json("feedback", "judge", [{"role": "user", "content": "x"}], TOOL)["is_bug"] is True
    fmt = server.requests[0][1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["is_bug", "analysis"]
