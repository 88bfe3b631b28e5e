"""Mistral: translation tables, exact upstream calls, errors, SSE + [DONE] streams, routes."""
from __future__ import annotations

import json
import signal

import pytest
import responses
from responses import matchers

from app.errors import UpstreamError
from app.providers import mistral as wire
from app.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from app.providers.mistral import MistralProvider
from app.schemas.chat import ChatChunk, ChatResponse
from app.schemas.completions import CompletionsChunk, CompletionsResponse
from app.schemas.embeddings import EmbeddingsResponse
from tests.providers.util import USER, data, events, example_endpoints, load, refusal, sent_json, session
from tests.upstream_spec import validate_request

SPEC = "mistral.openapi.yaml"
KEY = "mistral-test-key-abcdef0123"
BASE = "http://mistral.test/v1"
MODEL = "mistral-small-latest"
TOOL = {"type": "function", "function": {"name": "get_weather",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def provider() -> MistralProvider:
    return MistralProvider(MODEL, {"mistral_api_key": KEY, "mistral_api_base": BASE}, session=session())


CHAT_CASES = [
    ("minimal", {"messages": [USER]}, {"model": MODEL, "messages": [USER]}),
    ("developer is system; seed is random_seed; max_completion_tokens is max_tokens; n and stop kept",
     {"messages": [{"role": "developer", "content": "Be brief."}, USER], "seed": 7, "max_completion_tokens": 50,
      "n": 2, "stop": ["\n\n"], "temperature": 0.2, "top_p": 0.9},
     {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, USER], "random_seed": 7,
      "max_tokens": 50, "n": 2, "stop": ["\n\n"], "temperature": 0.2, "top_p": 0.9}),
    ("temperature passes unchanged up to Mistral's 1.5",
     {"messages": [USER], "temperature": 1.5}, {"model": MODEL, "messages": [USER], "temperature": 1.5}),
    ("tools: required is any; tool results carry the function name; parameters default",
     {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [
         {"id": "D681PevKs", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                   {"role": "tool", "tool_call_id": "D681PevKs", "content": "21C"}],
      "tools": [TOOL, {"type": "function", "function": {"name": "now", "description": "time"}}],
      "tool_choice": "required", "parallel_tool_calls": False},
     {"model": MODEL, "messages": [USER, {"role": "assistant", "content": None, "tool_calls": [
         {"id": "D681PevKs", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                                   {"role": "tool", "content": "21C", "tool_call_id": "D681PevKs", "name": "get_weather"}],
      "tools": [TOOL, {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}},
                                                        "description": "time"}}],
      "tool_choice": "any", "parallel_tool_calls": False}),
    ("forced function and content parts",
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}],
      "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                                {"type": "image_url", "image_url": "https://example.com/a.png"}]}],
      "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
]


@pytest.mark.parametrize("label,request_,expected", CHAT_CASES, ids=[c[0] for c in CHAT_CASES])
def test_chat_to_upstream(label, request_, expected):
    body = wire.chat_to_upstream(load(CHAT, request_), MODEL)
    assert body == expected
    validate_request(SPEC, "/v1/chat/completions", body)


def test_completions_become_one_user_turn():
    body = wire.completions_to_upstream(load(COMPLETIONS, {"prompt": ["Say hi"], "n": 3, "stop": "!", "max_tokens": 5}), MODEL)
    assert body == {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "n": 3, "stop": "!", "max_tokens": 5}
    validate_request(SPEC, "/v1/chat/completions", body)


REJECTED = [
    (CHAT, {"messages": [USER], "temperature": 1.6}, "temperature"),
    (CHAT, {"messages": [USER], "logit_bias": {"1": 1}}, "logit_bias"),
    (CHAT, {"messages": [USER], "logprobs": True}, "logprobs"),
    (CHAT, {"messages": [USER], "top_k": 5}, "top_k"),
    (CHAT, {"messages": [USER], "user": "u1"}, "user"),
    (CHAT, {"messages": [{"role": "user", "content": "hi", "name": "bob"}]}, "messages[0].name"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]}, "messages[0].content"),
    (CHAT, {"messages": [USER, {"role": "tool", "tool_call_id": "zz", "content": "x"}]}, "messages[1].tool_call_id"),
    (COMPLETIONS, {"prompt": ["a", "b"]}, "prompt"),
    (COMPLETIONS, {"prompt": "a", "echo": True}, "echo"),
    (COMPLETIONS, {"prompt": "a", "suffix": "b"}, "suffix"),
    (EMBEDDINGS, {"input": "a", "encoding_format": "base64"}, "encoding_format"),
    (EMBEDDINGS, {"input": "a", "user": "u"}, "user"),
]


@pytest.mark.parametrize("kind,request_,param", REJECTED, ids=[r[2] for r in REJECTED])
def test_unsupported_parameters_are_rejected(kind, request_, param):
    err = refusal(provider(), kind, request_)
    assert err.param == param and "Mistral" in err.message


@pytest.mark.parametrize("raw,expected", [("stop", "stop"), ("length", "length"), ("model_length", "length"),
                                          ("tool_calls", "tool_calls"), (None, None)])
def test_finish_reason(raw, expected):
    assert wire.finish_reason(raw) == expected


def test_error_object_mid_stream_raises():
    event = {"object": "error", "message": "Service unavailable", "type": "internal_error", "param": None, "code": None}
    with pytest.raises(UpstreamError, match="mid-stream: Service unavailable"):
        wire.chat_chunk_from_upstream(event, MODEL)
    with pytest.raises(UpstreamError, match="mid-stream"):
        wire.completions_chunk_from_upstream(event, MODEL)


def test_finish_reason_error_raises():
    with pytest.raises(UpstreamError):
        wire.finish_reason("error")


def test_responses_from_upstream():
    out = wire.chat_from_upstream(data("mistral", "chat.json"), MODEL)
    ChatResponse().load(out)
    assert out["id"] == "cmpl-e5cc70bb28c444948073e77776eb30ef" and out["created"] == 1718000000
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}]
    assert out["usage"] == {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17}
    tool = wire.chat_from_upstream(data("mistral", "chat_tool_call.json"), MODEL)["choices"][0]
    assert tool["finish_reason"] == "tool_calls"
    assert tool["message"]["tool_calls"] == [
        {"id": "D681PevKs", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]
    length = wire.completions_from_upstream(data("mistral", "chat_model_length.json"), MODEL)
    CompletionsResponse().load(length)
    assert length["choices"] == [{"index": 0, "text": "Paris is the cap", "finish_reason": "length"}]
    with pytest.raises(UpstreamError, match="error"):
        wire.chat_from_upstream(data("mistral", "chat_error_finish.json"), MODEL)


# ----- exact calls ------------------------------------------------------------------------------


@responses.activate
def test_chat_call_is_exact():
    responses.post(f"{BASE}/chat/completions", json=data("mistral", "chat.json"),
                   match=[matchers.header_matcher({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})])
    provider().chat(load(CHAT, {"messages": [USER], "temperature": 0.2}))
    call = responses.calls[0]
    assert call.request.url == f"{BASE}/chat/completions"
    assert sent_json(call) == {"model": MODEL, "messages": [USER], "temperature": 0.2}
    validate_request(SPEC, "/v1/chat/completions", sent_json(call))


@responses.activate
def test_embeddings_call():
    responses.post(f"{BASE}/embeddings", json=data("mistral", "embeddings.json"))
    out = MistralProvider("mistral-embed", {"mistral_api_key": KEY, "mistral_api_base": BASE}, session=session()).embeddings(
        load(EMBEDDINGS, {"input": ["a", "b"], "dimensions": 3}))
    body = sent_json(responses.calls[0])
    assert body == {"model": "mistral-embed", "input": ["a", "b"], "output_dimension": 3}
    validate_request(SPEC, "/v1/embeddings", body)
    EmbeddingsResponse().load(out)
    assert out["usage"] == {"prompt_tokens": 15, "total_tokens": 15}
    assert out["data"][1]["embedding"] == [0.0112, -0.0409, 0.0567]


@responses.activate
def test_chat_stream_usage_on_last_chunk():
    responses.post(f"{BASE}/chat/completions", body=data("mistral", "stream.sse"), content_type="text/event-stream")
    chunks = list(provider().chat_stream(load(CHAT, {"messages": [USER], "stream": True,
                                                     "stream_options": {"include_usage": True}})))
    body = sent_json(responses.calls[0])
    assert body == {"model": MODEL, "messages": [USER], "stream": True}  # stream_options is gateway framing
    validate_request(SPEC, "/v1/chat/completions", body)
    for c in chunks:
        ChatChunk().load(c)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Paris."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17}


@responses.activate
def test_completions_stream():
    responses.post(f"{BASE}/chat/completions", body=data("mistral", "stream.sse"), content_type="text/event-stream")
    chunks = list(provider().completions_stream(load(COMPLETIONS, {"prompt": "Capital?", "stream": True})))
    for c in chunks:
        CompletionsChunk().load(c)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Paris."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("name,message", [("stream_truncated.sse", "without \\[DONE\\]"),
                                          ("stream_error.sse", "finish_reason 'error'")])
@responses.activate
def test_stream_failures_raise(name, message):
    responses.post(f"{BASE}/chat/completions", body=data("mistral", name), content_type="text/event-stream")
    with pytest.raises(UpstreamError, match=message):
        list(provider().chat_stream(load(CHAT, {"messages": [USER], "stream": True})))


@pytest.mark.parametrize("file,status,headers,expect_status,expect_headers,text", [
    ("error_401.json", 401, {}, 401, {}, "Unauthorized"),
    ("error_400.json", 400, {}, 400, {}, "Assistant message must have"),
    ("error_422.json", 422, {}, 422, {}, "body.messages: Field required"),
    ("error_429.json", 429, {"Retry-After": "3"}, 429, {"Retry-After": "3"}, "rate limit"),
    (None, 503, {}, 503, {}, "HTTP 503"),
    (None, 500, {}, 502, {}, "HTTP 500"),
])
@responses.activate
def test_error_mapping(file, status, headers, expect_status, expect_headers, text):
    if file:
        responses.post(f"{BASE}/chat/completions", json=data("mistral", file), status=status, headers=headers)
    else:
        responses.post(f"{BASE}/chat/completions", body=b"", status=status)
    with pytest.raises(UpstreamError) as info:
        provider().chat(load(CHAT, {"messages": [USER]}))
    assert info.value.status == expect_status and info.value.headers == expect_headers
    assert text in info.value.message and KEY not in info.value.message


CONFIG = f"""
endpoints:
  - name: m-chat
    endpoint_type: llm/v1/chat
    model: {{provider: mistral, name: {MODEL}, config: {{mistral_api_key: {KEY}, mistral_api_base: "{BASE}"}}}}
  - name: m-completions
    endpoint_type: llm/v1/completions
    model: {{provider: mistral, name: {MODEL}, config: {{mistral_api_key: {KEY}, mistral_api_base: "{BASE}"}}}}
"""


@responses.activate
def test_routes(make_app):
    client = make_app(CONFIG).test_client()
    responses.post(f"{BASE}/chat/completions", json=data("mistral", "chat.json"))
    r = client.post("/v1/completions", json={"model": "m-completions", "prompt": "Capital of France?"})
    assert r.status_code == 200 and r.json["choices"][0]["text"] == "Paris."
    r = client.post("/endpoints/m-chat/invocations", json={"messages": [USER]})
    assert r.status_code == 200 and r.json["choices"][0]["message"]["content"] == "Paris."
    r = client.post("/v1/chat/completions", json={"model": "m-chat", "messages": [USER], "temperature": 1.9})
    assert r.status_code == 400 and r.json["error"]["param"] == "temperature"
    responses.replace(responses.POST, f"{BASE}/chat/completions", body=data("mistral", "stream_error.sse"),
                      content_type="text/event-stream")
    r = client.post("/gateway/m-chat/invocations", json={"messages": [USER], "stream": True})
    got = events(r.data)
    assert r.status_code == 200 and "[DONE]" not in got and "error" in got[-1]
    for call in responses.calls:
        validate_request(SPEC, "/v1/chat/completions", sent_json(call))


def test_live_mistral_stream_through_gunicorn(write_config):
    """SSE + [DONE] from a local fake Mistral through real gunicorn; a stream cut short is an error."""
    import requests

    from tests.live import FakeUpstream, Gunicorn, Reply

    def handler(seen):
        if seen.headers.get("Authorization") != f"Bearer {KEY}":
            return Reply(401, data("mistral", "error_401.json"))
        name = "stream_truncated.sse" if seen.json()["messages"][-1]["content"] == "cut" else "stream.sse"
        return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=[e + b"\n\n" for e in data("mistral", name).split(b"\n\n") if e])

    with FakeUpstream(handler) as fake:
        path = write_config(f"""
            endpoints:
              - name: m-chat
                endpoint_type: llm/v1/chat
                model: {{provider: mistral, name: {MODEL}, config: {{mistral_api_key: {KEY}, mistral_api_base: "{fake.url}/v1"}}}}
            """)
        with Gunicorn(path, workers=1) as gw:
            r = requests.post(gw.url + "/endpoints/m-chat/invocations", json={"stream": True, "messages": [USER]}, timeout=10)
            got = events(r.content)
            assert r.status_code == 200 and got[-1] == "[DONE]"
            assert got[-2]["usage"]["total_tokens"] == 17
            assert fake.requests[0].path == "/v1/chat/completions" and fake.requests[0].json()["stream"] is True
            r = requests.post(gw.url + "/endpoints/m-chat/invocations",
                              json={"stream": True, "messages": [{"role": "user", "content": "cut"}]}, timeout=10)
            got = events(r.content)
            assert "[DONE]" not in got and "without [DONE]" in got[-1]["error"]["message"]
            for seen in fake.requests:
                validate_request(SPEC, "/v1/chat/completions", seen.json())
            gw.stop(signal.SIGINT)  # quick shutdown: graceful draining is not under test here


def test_example_config_loads(monkeypatch):
    endpoints = example_endpoints("mistral.yaml", monkeypatch, MISTRAL_API_KEY=KEY)
    assert [e.name for e in endpoints] == ["mistral-chat", "mistral-completions", "mistral-embeddings"]
