"""AI21 Labs provider: Jamba chat (plain and streamed), completions via Jamba or Jurassic-2, errors."""
from __future__ import annotations

import pytest
import responses

from app import config as config_mod
from app.errors import ConfigError, InvalidRequest, UpstreamError
from app.providers import ai21labs as ai21
from tests.providers.util import USER, build, data, data_json, example_endpoints, sent, sse_events
from tests.upstream_spec import validate_request

SPEC = "ai21.openapi.json"
CHAT_PATH = "/studio/v1/chat/completions"
BASE = "https://api.ai21.com/studio/v1"
KEY = "ai21-secret-key-987"

YAML = f"""
endpoints:
  - name: jamba
    endpoint_type: llm/v1/chat
    model: {{provider: ai21labs, name: jamba-mini, config: {{ai21labs_api_key: "{KEY}"}}}}
  - name: jamba-text
    endpoint_type: llm/v1/completions
    model: {{provider: ai21labs, name: jamba-mini, config: {{ai21labs_api_key: "{KEY}"}}}}
  - name: j2
    endpoint_type: llm/v1/completions
    model: {{provider: ai21labs, name: j2-ultra, config: {{ai21labs_api_key: "{KEY}", ai21labs_api_base: "http://ai21.test/v1"}}}}
"""


@pytest.mark.parametrize("request_, expected", [
    ({"messages": [USER]}, {"messages": [USER]}),
    ({"messages": [{"role": "developer", "content": "Be brief."}, USER], "temperature": 0.2, "max_tokens": 50},
     {"messages": [{"role": "system", "content": "Be brief."}, USER], "temperature": 0.2, "max_tokens": 50}),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Capital "}, {"type": "text", "text": "of France?"}]}]},
     {"messages": [USER]}),
    ({"messages": [USER], "max_completion_tokens": 9, "top_p": 0.5, "stop": ["\n"], "n": 2},
     {"messages": [USER], "max_tokens": 9, "top_p": 0.5, "stop": ["\n"], "n": 2}),
    ({"messages": [USER], "stream": True, "stream_options": {"include_usage": True}},
     {"messages": [USER], "stream": True}),
    ({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}], "tool_choice": "auto",
      "response_format": {"type": "json_object"}},
     {"messages": [USER, {"role": "assistant", "tool_calls": [
         {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
         {"role": "tool", "tool_call_id": "c1", "content": "42"}], "response_format": {"type": "json_object"}}),
])
def test_chat_to_upstream(request_, expected):
    body = ai21.chat_to_upstream(request_, "jamba-mini")
    assert body == {"model": "jamba-mini", **expected}
    validate_request(SPEC, CHAT_PATH, body)


@pytest.mark.parametrize("request_, param", [
    ({"tool_choice": "required"}, "tool_choice"),
    ({"presence_penalty": 1}, "presence_penalty"),
    ({"seed": 1}, "seed"),
    ({"stream": True, "n": 2}, "n"),
    ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
    ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content"),
])
def test_chat_rejects(request_, param):
    with pytest.raises(InvalidRequest) as info:
        ai21.chat_to_upstream({"messages": [USER], **request_}, "jamba-mini")
    assert info.value.param == param and "AI21 Labs" in info.value.message


@pytest.mark.parametrize("request_, expected", [
    ({"prompt": "Hi"}, {"prompt": "Hi"}),
    ({"prompt": ["Hi"], "max_tokens": 5, "n": 2, "temperature": 0, "top_p": 0.9, "stop": "."},
     {"prompt": "Hi", "maxTokens": 5, "numResults": 2, "temperature": 0, "topP": 0.9, "stopSequences": ["."]}),
])
def test_jurassic_request(request_, expected):
    assert ai21.complete_to_upstream(request_) == expected


@pytest.mark.parametrize("request_, param", [
    ({"prompt": ["a", "b"]}, "prompt"), ({"prompt": "a", "stream": True}, "stream"),
    ({"prompt": "a", "logprobs": 1}, "logprobs"),
])
def test_jurassic_rejects(request_, param):
    with pytest.raises(InvalidRequest) as info:
        ai21.complete_to_upstream(request_)
    assert info.value.param == param


def test_jurassic_reply():
    out = ai21.complete_from_upstream(data_json("ai21/j2_complete.json"), "j2-ultra")
    assert [(c["text"], c["finish_reason"]) for c in out["choices"]] == [
        (" Paris.", "stop"), (" Paris is the capital", "length")]
    assert out["usage"] is None and out["object"] == "text_completion"


@pytest.mark.parametrize("body, message", [
    ({"detail": "Forbidden: Bad or missing API token."}, "Forbidden: Bad or missing API token."),
    (data_json("ai21/error_422.json"), "body.max_tokens: ensure this value is less than or equal to 4096"),
    ({"error": {"message": "boom"}}, "boom"),
])
def test_error_message(body, message):
    provider = build(ai21.AI21LabsProvider, "jamba-mini", {"ai21labs_api_key": KEY})
    assert provider.error_message(body) == message


@responses.activate
def test_chat_exact_request(make_app):
    responses.post(f"{BASE}/chat/completions", body=data("ai21/chat.json"), content_type="application/json")
    resp = make_app(YAML).test_client().post("/gateway/jamba/invocations", json={
        "messages": [{"role": "system", "content": "Be brief."}, USER], "max_tokens": 50, "temperature": 0.2})
    assert resp.status_code == 200, resp.json
    call, body = sent()
    assert call.request.url == f"{BASE}/chat/completions"
    assert call.request.headers["Authorization"] == f"Bearer {KEY}"
    assert body == {"model": "jamba-mini", "messages": [{"role": "system", "content": "Be brief."}, USER],
                    "max_tokens": 50, "temperature": 0.2}
    validate_request(SPEC, CHAT_PATH, body)
    out = resp.json
    assert out["object"] == "chat.completion" and out["model"] == "jamba-mini"
    assert out["id"] == "chat-5b1e2c4a-8f0f-4c5e-9b0e-1f2d3c4b5a69"
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}]
    assert out["usage"] == {"prompt_tokens": 22, "completion_tokens": 3, "total_tokens": 25}


@responses.activate
def test_chat_tool_calls(make_app):
    responses.post(f"{BASE}/chat/completions", body=data("ai21/chat_tools.json"), content_type="application/json")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    resp = make_app(YAML).test_client().post("/v1/chat/completions", json={
        "model": "jamba", "messages": [USER], "tools": tools})
    assert resp.status_code == 200, resp.json
    _, body = sent()
    assert body["tools"] == tools
    validate_request(SPEC, CHAT_PATH, body)
    choice = resp.json["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


@responses.activate
def test_chat_stream_with_usage(make_app):
    responses.post(f"{BASE}/chat/completions", body=data("ai21/chat_stream.sse"), content_type="text/event-stream")
    resp = make_app(YAML).test_client().post("/v1/chat/completions", json={
        "model": "jamba", "messages": [USER], "stream": True, "stream_options": {"include_usage": True}})
    assert resp.status_code == 200
    events = sse_events(resp.data)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "jamba-mini" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Paris."
    assert chunks[2]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[2]
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["total_tokens"] == 25
    _, body = sent()
    validate_request(SPEC, CHAT_PATH, body)


@pytest.mark.parametrize("stream, message", [
    (b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"Pa"},"finish_reason":null}]}\n\n',
     r"ended without \[DONE\]"),
    (b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"Pa"},"finish_reason":null}]}\n\n'
     b'data: {"error":{"message":"internal error"}}\n\n', "internal error"),
])
@responses.activate
def test_chat_stream_failures(stream, message):
    responses.post(f"{BASE}/chat/completions", body=stream, content_type="text/event-stream")
    provider = build(ai21.AI21LabsProvider, "jamba-mini", {"ai21labs_api_key": KEY})
    chunks = provider.chat_stream({"messages": [USER], "stream": True})
    assert next(chunks)["choices"][0]["delta"] == {"content": "Pa"}
    with pytest.raises(UpstreamError, match=message):
        list(chunks)


@responses.activate
def test_completions_via_jamba(make_app):
    responses.post(f"{BASE}/chat/completions", body=data("ai21/chat.json"), content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/completions", json={
        "model": "jamba-text", "prompt": "Capital of France?", "max_tokens": 8})
    assert resp.status_code == 200, resp.json
    _, body = sent()
    assert body == {"model": "jamba-mini", "messages": [USER], "max_tokens": 8}
    validate_request(SPEC, CHAT_PATH, body)
    assert resp.json["object"] == "text_completion"
    assert resp.json["choices"] == [{"index": 0, "text": "Paris.", "finish_reason": "stop"}]
    assert resp.json["usage"]["prompt_tokens"] == 22


@responses.activate
def test_completions_stream_via_jamba(make_app):
    responses.post(f"{BASE}/chat/completions", body=data("ai21/chat_stream.sse"), content_type="text/event-stream")
    resp = make_app(YAML).test_client().post("/v1/completions", json={
        "model": "jamba-text", "prompt": "Capital of France?", "stream": True})
    events = sse_events(resp.data)
    assert events[-1] == "[DONE]"
    assert [e["choices"] for e in events[:-1]] == [
        [{"index": 0, "text": "Paris.", "finish_reason": None}],
        [{"index": 0, "text": "", "finish_reason": "stop"}],
    ]
    assert all(e["object"] == "text_completion" for e in events[:-1])


@responses.activate
def test_jurassic_completions(make_app):
    responses.post("http://ai21.test/v1/j2-ultra/complete", body=data("ai21/j2_complete.json"),
                   content_type="application/json")
    client = make_app(YAML).test_client()
    resp = client.post("/v1/completions", json={"model": "j2", "prompt": "Capital of France?", "n": 2, "max_tokens": 4})
    assert resp.status_code == 200, resp.json
    call, body = sent()
    assert call.request.url == "http://ai21.test/v1/j2-ultra/complete"
    assert call.request.headers["Authorization"] == f"Bearer {KEY}"
    assert body == {"prompt": "Capital of France?", "numResults": 2, "maxTokens": 4}
    assert [c["finish_reason"] for c in resp.json["choices"]] == ["stop", "length"]
    resp = client.post("/v1/completions", json={"model": "j2", "prompt": "x", "stream": True})
    assert resp.status_code == 400 and resp.json["error"]["param"] == "stream"


@pytest.mark.parametrize("status, file, expected", [
    (401, "ai21/error_401.json", 401), (422, "ai21/error_422.json", 422), (500, "ai21/error_401.json", 502),
    (503, "ai21/error_401.json", 503),
])
@responses.activate
def test_upstream_errors(make_app, status, file, expected):
    responses.post(f"{BASE}/chat/completions", status=status, body=data(file), content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/chat/completions", json={"model": "jamba", "messages": [USER]})
    assert resp.status_code == expected
    assert KEY not in resp.get_data(as_text=True)


@responses.activate
def test_rate_limit_keeps_retry_after(make_app):
    responses.post(f"{BASE}/chat/completions", status=429, body=b'{"detail":"Too many requests"}',
                   content_type="application/json", headers={"Retry-After": "7"})
    resp = make_app(YAML).test_client().post("/v1/chat/completions", json={"model": "jamba", "messages": [USER]})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert "Too many requests" in resp.json["error"]["message"]


def test_config_checks():
    bad = """
endpoints:
  - name: e
    endpoint_type: {etype}
    model: {{provider: ai21labs, name: {model}, config: {config}}}
"""
    with pytest.raises(ConfigError, match="ai21labs_api_key"):
        config_mod.parse(bad.format(etype="llm/v1/chat", model="jamba-mini", config="{}"))
    with pytest.raises(ConfigError, match="Jurassic-2 model"):
        config_mod.parse(bad.format(etype="llm/v1/chat", model="j2-mid", config="{ai21labs_api_key: k}"))
    with pytest.raises(ConfigError, match="does not support llm/v1/embeddings"):
        config_mod.parse(bad.format(etype="llm/v1/embeddings", model="jamba-mini", config="{ai21labs_api_key: k}"))


def test_example_config_loads(monkeypatch):
    endpoints = example_endpoints("ai21labs.yaml", monkeypatch, AI21_API_KEY="example-key")
    assert endpoints and {e.provider for e in endpoints} == {"ai21labs"}


@pytest.mark.parametrize("reply", [b'{"id": "x"}', b'{"choices": [{"index": 0}]}', b'[1, 2]', b'{"choices": "no"}'])
@responses.activate
def test_malformed_chat_reply_is_502(make_app, reply):
    responses.post(f"{BASE}/chat/completions", body=reply, content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/chat/completions", json={"model": "jamba", "messages": [USER]})
    assert resp.status_code == 502, resp.json


@responses.activate
def test_malformed_stream_event_is_an_error_event(make_app):
    responses.post(f"{BASE}/chat/completions", content_type="text/event-stream", body=(
        b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"Pa"},"finish_reason":null}]}\n\n'
        b'data: [1, 2]\n\n'))
    resp = make_app(YAML).test_client().post("/v1/chat/completions", json={
        "model": "jamba", "messages": [USER], "stream": True})
    events = sse_events(resp.data)
    assert events[0]["choices"][0]["delta"]["content"] == "Pa"
    assert "not a chunk" in events[-1]["error"]["message"] and "[DONE]" not in events
