"""Anthropic provider: pure translation tables, exact upstream calls, streams and error mapping."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses
import sseclient

from app import config
from app.errors import ConfigError, InvalidRequest, UpstreamError, UpstreamUnavailable
from app.providers import anthropic as anth
from app.providers.anthropic_stream import StreamTranslator, finish_reason, to_usage
from tests.providers.util import USER, WEATHER_TOOL, check_text_stream, example_endpoints, read_stream
from tests.upstream_spec import validate_request

DATA = Path(__file__).resolve().parents[1] / "data" / "anthropic"
SPEC = "anthropic.openapi.json"
KEY = "sk-ant-test-9f8e7d6c5b4a"
BASE = "http://anthropic.test"
URL = f"{BASE}/v1/messages"

CONFIG = f"""
endpoints:
  - name: claude
    endpoint_type: llm/v1/chat
    model:
      provider: anthropic
      name: claude-3-5-haiku-20241022
      config: {{anthropic_api_key: {KEY}, anthropic_api_base: "{BASE}"}}
  - name: claude-text
    endpoint_type: llm/v1/completions
    model:
      provider: anthropic
      name: claude-3-5-haiku-20241022
      config: {{anthropic_api_key: {KEY}, anthropic_api_base: "{BASE}", anthropic_version: "2023-06-01"}}
"""


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def body_json(name: str) -> dict:
    return json.loads(data(name))


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    return [(e.event, json.loads(e.data)) for e in sseclient.SSEClient([raw]).events() if e.data]


# ----- pure translation ----------------------------------------------------------------------

TO_UPSTREAM = [
    (
        "system and developer hoisted; temperature halved; stop string to list",
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "No lists."}, USER],
         "temperature": 0.4, "top_p": 0.9, "top_k": 40, "stop": "END", "max_tokens": 64},
        {"model": "m", "max_tokens": 64, "system": "Be brief.\n\nNo lists.", "messages": [USER],
         "temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"]},
    ),
    (
        "default max_tokens; max_completion_tokens wins over max_tokens; temperature 2 -> 1",
        {"messages": [USER], "temperature": 2.0, "stop": ["a", "b"]},
        {"model": "m", "max_tokens": anth.DEFAULT_MAX_TOKENS, "messages": [USER], "temperature": 1.0,
         "stop_sequences": ["a", "b"]},
    ),
    (
        "max_completion_tokens preferred",
        {"messages": [USER], "max_tokens": 10, "max_completion_tokens": 20},
        {"model": "m", "max_tokens": 20, "messages": [USER]},
    ),
    (
        "consecutive user turns merged into blocks",
        {"messages": [USER, {"role": "user", "content": [{"type": "text", "text": "Answer in French."}]}]},
        {"model": "m", "max_tokens": anth.DEFAULT_MAX_TOKENS, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"},
                                         {"type": "text", "text": "Answer in French."}]}]},
    ),
    (
        "tools, assistant tool_calls, parallel tool results in one user turn, named tool_choice",
        {"messages": [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Lyon"}'}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "21C"}]},
        ], "tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"model": "m", "max_tokens": anth.DEFAULT_MAX_TOKENS, "messages": [
            USER,
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"location": "Lyon"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "21C"}]},
        ], "tools": [{"name": "get_weather", "description": "Current weather for a city.",
                      "input_schema": WEATHER_TOOL["function"]["parameters"]}],
         "tool_choice": {"type": "tool", "name": "get_weather"}},
    ),
    (
        "required -> any, parallel_tool_calls false, user -> metadata.user_id",
        {"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": "required", "parallel_tool_calls": False,
         "user": "u-42"},
        {"model": "m", "max_tokens": anth.DEFAULT_MAX_TOKENS, "messages": [USER],
         "tools": [{"name": "get_weather", "description": "Current weather for a city.",
                    "input_schema": WEATHER_TOOL["function"]["parameters"]}],
         "tool_choice": {"type": "any", "disable_parallel_tool_use": True}, "metadata": {"user_id": "u-42"}},
    ),
    (
        "none tool_choice, image parts",
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}],
         "tools": [WEATHER_TOOL], "tool_choice": "none"},
        {"model": "m", "max_tokens": anth.DEFAULT_MAX_TOKENS, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}],
         "tools": [{"name": "get_weather", "description": "Current weather for a city.",
                    "input_schema": WEATHER_TOOL["function"]["parameters"]}],
         "tool_choice": {"type": "none"}},
    ),
    (
        "completions prompt becomes one user turn",
        {"prompt": ["Once upon a time"], "max_tokens": 16, "stream": True},
        {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "Once upon a time"}], "stream": True},
    ),
]


@pytest.mark.parametrize("request_, expected", [c[1:] for c in TO_UPSTREAM], ids=[c[0] for c in TO_UPSTREAM])
def test_to_upstream(request_: dict, expected: dict) -> None:
    body = anth.to_upstream(request_, "m")
    assert body == expected
    validate_request(SPEC, "/v1/messages", body)


REJECTED = [
    ({"messages": [USER], "n": 2}, "n"),
    ({"messages": [USER], "presence_penalty": 0.5}, "presence_penalty"),
    ({"messages": [USER], "logprobs": True}, "logprobs"),
    ({"messages": [USER], "top_k": -1}, "top_k"),
    ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "messages"),
    ({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]}, "messages"),
    ({"prompt": ["one", "two"]}, "prompt"),
    ({"messages": [USER], "tool_choice": "required"}, "tool_choice"),
]


@pytest.mark.parametrize("request_, param", REJECTED, ids=[p for _, p in REJECTED])
def test_to_upstream_rejects_what_anthropic_cannot_do(request_: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        anth.to_upstream(request_, "m")
    assert info.value.param == param
    assert param in info.value.message and "Anthropic" in info.value.message


@pytest.mark.parametrize("native, unified", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    (None, None),
])
def test_finish_reason_table(native: str | None, unified: str | None) -> None:
    assert finish_reason(native) == unified


def test_usage_counts_cached_input_as_prompt() -> None:
    assert to_usage({"input_tokens": 14, "output_tokens": 5, "cache_creation_input_tokens": 3,
                     "cache_read_input_tokens": 20}) == {"prompt_tokens": 37, "completion_tokens": 5, "total_tokens": 42}
    assert to_usage(None) is None


def test_from_upstream_text_and_tool_use() -> None:
    text = anth.from_upstream(body_json("message_text.json"), "fallback")
    assert text["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert text["model"] == "claude-3-5-haiku-20241022"
    assert text["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}]
    assert text["usage"]["prompt_tokens"] == 37
    tools = anth.from_upstream(body_json("message_tool_use.json"), "m")
    message = tools["choices"][0]["message"]
    assert tools["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] == "Let me check the weather."
    assert message["tool_calls"] == [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"location":"Paris, France","unit":"celsius"}'}}]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"location": "Paris, France", "unit": "celsius"}


def test_stream_translator_tool_use_events() -> None:
    translator = StreamTranslator("m", "chat", include_usage=True)
    chunks = [c for name, d in sse_events(data("stream_tool_use.sse")) for c in translator.feed(name, d)]
    assert translator.done
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Checking."}
    assert deltas[2] == {"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]}
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:] if "tool_calls" in d)
    assert json.loads(args) == {"location": "Paris, France"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}
    assert {c["id"] for c in chunks} == {"msg_014p7gG3wDgGV9EUtLvnow3U"}


# ----- config ------------------------------------------------------------------------------------


def test_config_defaults_and_rejections() -> None:
    [endpoint] = config.parse(CONFIG.split("  - name: claude-text")[0])
    assert endpoint.config["anthropic_version"] == "2023-06-01"
    with pytest.raises(ConfigError, match="does not support llm/v1/embeddings"):
        config.parse(CONFIG.replace("llm/v1/chat", "llm/v1/embeddings"))
    with pytest.raises(ConfigError, match="anthropic_api_key"):
        config.parse(CONFIG.replace(f"anthropic_api_key: {KEY}, ", ""))
    with pytest.raises(ConfigError, match="unknown key"):
        config.parse(CONFIG.replace("anthropic_api_key:", "anthropic_organization: x, anthropic_api_key:"))


def test_example_config_loads(monkeypatch) -> None:
    endpoints = example_endpoints("anthropic.yaml", monkeypatch, ANTHROPIC_API_KEY="from-the-environment")
    assert len(endpoints) == 2
    assert {e.provider for e in endpoints} == {"anthropic"}
    assert all(e.config["anthropic_api_key"] == "from-the-environment" for e in endpoints)


# ----- through the app, upstream mocked with `responses` -------------------------------------


@pytest.fixture
def client(make_app):
    return make_app(CONFIG).test_client()


def sent(upstream: responses.RequestsMock, index: int = 0) -> dict:
    call = upstream.calls[index]
    assert call.request.url == URL
    assert call.request.headers["x-api-key"] == KEY
    assert call.request.headers["anthropic-version"] == "2023-06-01"
    assert call.request.headers["Content-Type"] == "application/json"
    body = json.loads(call.request.body)
    validate_request(SPEC, "/v1/messages", body)
    return body


def stream_reply(upstream: responses.RequestsMock, name: str) -> None:
    upstream.add(responses.POST, URL, body=data(name), status=200, content_type="text/event-stream")


def test_chat_on_v1_route(client, upstream) -> None:
    upstream.add(responses.POST, URL, json=body_json("message_text.json"))
    resp = client.post("/v1/chat/completions", json={
        "model": "claude", "messages": [{"role": "system", "content": "Be brief."}, USER],
        "temperature": 0.5, "stop": ["\n\n"],
    })
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["choices"][0]["message"]["content"] == "Paris."
    assert resp.get_json()["usage"] == {"prompt_tokens": 37, "completion_tokens": 5, "total_tokens": 42}
    assert sent(upstream) == {
        "model": "claude-3-5-haiku-20241022", "max_tokens": 4096, "system": "Be brief.", "messages": [USER],
        "temperature": 0.25, "stop_sequences": ["\n\n"],
    }


def test_chat_with_tools_on_mlflow_route(client, upstream) -> None:
    upstream.add(responses.POST, URL, json=body_json("message_tool_use.json"))
    resp = client.post("/endpoints/claude/invocations", json={"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": "auto"})
    assert resp.status_code == 200
    choice = resp.get_json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent(upstream)["tool_choice"] == {"type": "auto"}


def test_completions_both_routes(client, upstream) -> None:
    upstream.add(responses.POST, URL, json=body_json("message_max_tokens.json"))
    upstream.add(responses.POST, URL, json=body_json("message_max_tokens.json"))
    one = client.post("/v1/completions", json={"model": "claude-text", "prompt": "Tell a story", "max_tokens": 3})
    two = client.post("/gateway/claude-text/invocations", json={"prompt": "Tell a story", "max_tokens": 3})
    for resp in (one, two):
        assert resp.status_code == 200
        assert resp.get_json()["object"] == "text_completion"
        assert resp.get_json()["choices"] == [{"index": 0, "text": "Once upon a", "finish_reason": "length"}]
    assert sent(upstream, 0) == sent(upstream, 1) == {
        "model": "claude-3-5-haiku-20241022", "max_tokens": 3, "messages": [{"role": "user", "content": "Tell a story"}]}


def test_n_rejected_before_any_call(client, upstream) -> None:
    resp = client.post("/v1/chat/completions", json={"model": "claude", "messages": [USER], "n": 2})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["param"] == "n"
    assert "Anthropic" in resp.get_json()["error"]["message"]
    resp = client.post("/endpoints/claude/invocations", json={"messages": [USER], "n": 3})
    assert resp.status_code == 422
    assert len(upstream.calls) == 0


def test_stream_text_with_usage(client, upstream) -> None:
    stream_reply(upstream, "stream_text.sse")
    resp = client.post("/v1/chat/completions", json={
        "model": "claude", "messages": [USER], "stream": True, "stream_options": {"include_usage": True}})
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    check_text_stream(read_stream(resp), "Paris is the capital.",
                      {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27})
    assert sent(upstream)["stream"] is True


def test_completions_stream(client, upstream) -> None:
    stream_reply(upstream, "stream_text.sse")
    resp = client.post("/v1/completions", json={"model": "claude-text", "prompt": "Capital?", "stream": True})
    chunks = read_stream(resp)[:-1]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Paris is the capital."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in chunks[-1]


# ----- errors ------------------------------------------------------------------------------------

ERRORS = [
    (400, "error_400.json", {}, 400, "roles must alternate"),
    (401, "error_401.json", {}, 401, "invalid x-api-key"),
    (429, "error_429.json", {"retry-after": "17"}, 429, "rate limit"),
    (529, "error_529.json", {}, 503, "Overloaded"),
    (500, "error_500.json", {}, 502, "Internal server error"),
]


@pytest.mark.parametrize("status, fixture, headers, expected, text", ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_upstream_errors_mapped(client, upstream, status, fixture, headers, expected, text) -> None:
    upstream.add(responses.POST, URL, json=body_json(fixture), status=status, headers=headers)
    resp = client.post("/v1/chat/completions", json={"model": "claude", "messages": [USER]})
    assert resp.status_code == expected
    error = resp.get_json()["error"]
    assert text in error["message"]
    assert KEY not in resp.get_data(as_text=True)
    if status == 429:
        assert resp.headers["Retry-After"] == "17"
    if status in (400, 401):
        assert error["code"] == body_json(fixture)["error"]["type"]


def test_error_message_never_echoes_the_key(client, upstream) -> None:
    upstream.add(responses.POST, URL, status=401, json={
        "type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"}})
    resp = client.post("/v1/chat/completions", json={"model": "claude", "messages": [USER]})
    assert resp.status_code == 401
    assert KEY not in resp.get_data(as_text=True) and "[redacted]" in resp.get_data(as_text=True)


def test_refusal_before_stream_keeps_status(client, upstream) -> None:
    upstream.add(responses.POST, URL, json=body_json("error_529.json"), status=529)
    resp = client.post("/v1/chat/completions", json={"model": "claude", "messages": [USER], "stream": True})
    assert resp.status_code == 503


def test_mid_stream_error_event_ends_with_error(client, upstream) -> None:
    stream_reply(upstream, "stream_overloaded.sse")
    resp = client.post("/v1/chat/completions", json={"model": "claude", "messages": [USER], "stream": True})
    events = read_stream(resp)
    assert "[DONE]" not in events
    assert events[-1]["error"]["type"] == "service_unavailable_error"
    assert "Overloaded" in events[-1]["error"]["message"]
    assert events[-2]["choices"][0]["delta"] == {"content": "Par"}


def test_truncated_stream_is_an_error(client, upstream) -> None:
    stream_reply(upstream, "stream_truncated.sse")
    resp = client.post("/v1/chat/completions", json={"model": "claude", "messages": [USER], "stream": True})
    events = read_stream(resp)
    assert "[DONE]" not in events
    assert "message_stop" in events[-1]["error"]["message"]


def test_provider_stream_errors_raise_directly(make_app, upstream) -> None:
    provider = make_app(CONFIG).extensions["ai_gateway"].get("claude").provider
    stream_reply(upstream, "stream_overloaded.sse")
    with pytest.raises(UpstreamUnavailable):
        list(provider.chat_stream({"messages": [USER], "stream": True}))
    stream_reply(upstream, "stream_truncated.sse")
    with pytest.raises(UpstreamError, match="without message_stop"):
        list(provider.chat_stream({"messages": [USER], "stream": True}))
    err = provider.stream_error({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    assert err.status == 429


# Ask gunicorn to drop the connection after the reply, so its graceful stop need not wait.
CLOSE = {"Connection": "close"}


# ----- live: real gunicorn + gevent in front of a local fake Anthropic ----------------------


def test_live_named_event_stream_through_gunicorn(write_config) -> None:
    import time

    import openai
    import requests

    from tests.live import FakeUpstream, Gunicorn, Reply

    frames = [f + b"\n\n" for f in data("stream_text.sse").split(b"\n\n") if f.strip()]

    def handler(seen) -> Reply:
        if seen.headers.get("x-api-key") != KEY:
            return Reply(401, body_json("error_401.json"))
        return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=frames, chunk_interval=0.05)

    with FakeUpstream(handler) as fake:
        path = write_config(CONFIG.replace(BASE, fake.url))
        with Gunicorn(path, workers=1) as gw:
            started = time.monotonic()
            arrivals = []
            with requests.post(f"{gw.url}/v1/chat/completions", stream=True, timeout=10, headers=CLOSE, json={
                "model": "claude", "messages": [USER], "stream": True,
                "stream_options": {"include_usage": True}}) as resp:
                assert resp.status_code == 200
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                for event in sseclient.SSEClient(resp).events():
                    arrivals.append((time.monotonic() - started, event.data))
            # The official OpenAI SDK reads the same stream as an OpenAI one.
            with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0) as sdk:
                stream = sdk.chat.completions.create(model="claude", messages=[USER], stream=True)
                pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
                assert "".join(pieces) == "Paris is the capital."
                with pytest.raises(openai.BadRequestError, match="Anthropic"):
                    sdk.chat.completions.create(model="claude", messages=[USER], n=2)
        assert len(fake.requests) == 2
        seen = fake.requests[0]
        assert seen.path == "/v1/messages"
        assert seen.headers["anthropic-version"] == "2023-06-01"
        validate_request(SPEC, "/v1/messages", seen.json())
    assert arrivals[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in arrivals[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Paris is the capital."
    assert chunks[-1]["usage"]["completion_tokens"] == 7
    # The upstream spends ~0.4 s on 8 frames; the first chunk must not wait for the last.
    assert arrivals[-1][0] - arrivals[0][0] > 0.2
