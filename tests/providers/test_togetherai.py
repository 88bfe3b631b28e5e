"""Together AI: translation tables, exact upstream calls, errors, SSE + [DONE] streams, routes."""
from __future__ import annotations

import pytest
import responses
from responses import matchers

from app.errors import UpstreamError
from app.providers import togetherai as wire
from app.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from app.providers.togetherai import TogetherAIProvider
from app.schemas.chat import ChatChunk, ChatResponse
from app.schemas.completions import CompletionsChunk, CompletionsResponse
from app.schemas.embeddings import EmbeddingsResponse
from tests.providers.util import USER, data, events, example_endpoints, load, refusal, sent_json, session
from tests.upstream_spec import validate_request

SPEC = "together.openapi.yaml"
KEY = "together-test-key-9876543210"
BASE = "http://together.test/v1"
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def provider(model: str = MODEL) -> TogetherAIProvider:
    return TogetherAIProvider(model, {"togetherai_api_key": KEY, "togetherai_api_base": BASE}, session=session())


CHAT_CASES = [
    ("minimal", {"messages": [USER]}, {"model": MODEL, "messages": [USER]}),
    ("stop string becomes a list; Together's own sampling keys pass; temperature unchanged",
     {"messages": [{"role": "developer", "content": "Be brief."}, USER], "stop": "\n", "top_k": 50,
      "repetition_penalty": 1.1, "min_p": 0.05, "temperature": 1.3, "n": 2, "max_completion_tokens": 20, "seed": 3},
     {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, USER], "stop": ["\n"], "top_k": 50,
      "repetition_penalty": 1.1, "min_p": 0.05, "temperature": 1.3, "n": 2, "max_tokens": 20, "seed": 3}),
    ("tools, a forced function by name, replayed calls carry index",
     {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [
         {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "21C"}],
      "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     {"model": MODEL, "messages": [USER, {"role": "assistant", "tool_calls": [
         {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                                   {"role": "tool", "content": "21C", "tool_call_id": "call_1"}],
      "tools": [TOOL], "tool_choice": "get_weather"}),
    ("tool_choice required and text parts of a system message",
     {"messages": [{"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]}, USER],
      "tools": [TOOL], "tool_choice": "required"},
     {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, USER], "tools": [TOOL], "tool_choice": "required"}),
]


@pytest.mark.parametrize("label,request_,expected", CHAT_CASES, ids=[c[0] for c in CHAT_CASES])
def test_chat_to_upstream(label, request_, expected):
    body = wire.chat_to_upstream(load(CHAT, request_), MODEL)
    assert body == expected
    validate_request(SPEC, "/chat/completions", body)


def test_completions_to_upstream():
    body = wire.completions_to_upstream(load(COMPLETIONS, {"prompt": ["Paris is"], "max_tokens": 7, "stop": ["."], "echo": True}), MODEL)
    assert body == {"model": MODEL, "prompt": "Paris is", "max_tokens": 7, "stop": ["."], "echo": True}
    validate_request(SPEC, "/completions", body)


REJECTED = [
    (CHAT, {"messages": [USER], "logprobs": True}, "logprobs"),
    (CHAT, {"messages": [USER], "parallel_tool_calls": False}, "parallel_tool_calls"),
    (CHAT, {"messages": [USER], "user": "u"}, "user"),
    (CHAT, {"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}, USER]},
     "messages[0].content"),
    (COMPLETIONS, {"prompt": ["a", "b"]}, "prompt"),
    (COMPLETIONS, {"prompt": "a", "best_of": 3}, "best_of"),
    (COMPLETIONS, {"prompt": "a", "response_format": {"type": "json_object"}}, "response_format"),
    (EMBEDDINGS, {"input": "a", "dimensions": 8}, "dimensions"),
    (EMBEDDINGS, {"input": "a", "encoding_format": "base64"}, "encoding_format"),
]


@pytest.mark.parametrize("kind,request_,param", REJECTED, ids=[f"{r[0][7:]}-{r[2]}" for r in REJECTED])
def test_unsupported_parameters_are_rejected(kind, request_, param):
    err = refusal(provider(), kind, request_)
    assert err.param == param and "Together AI" in err.message


@pytest.mark.parametrize("raw,expected", [("stop", "stop"), ("eos", "stop"), ("length", "length"),
                                          ("tool_calls", "tool_calls"), ("function_call", "tool_calls"), (None, None)])
def test_finish_reason(raw, expected):
    assert wire.finish_reason(raw) == expected


def test_finish_reason_error_raises():
    with pytest.raises(UpstreamError):
        wire.finish_reason("error")


def test_responses_from_upstream():
    chat = wire.chat_from_upstream(data("togetherai", "chat.json"), MODEL)
    ChatResponse().load(chat)
    assert chat["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}]
    assert chat["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15} and chat["id"] == "8448080b880415ea-SJC"
    tool = wire.chat_from_upstream(data("togetherai", "chat_tool_call.json"), MODEL)["choices"][0]
    assert tool["finish_reason"] == "tool_calls"
    assert tool["message"]["tool_calls"] == [
        {"id": "call_8b3e6c5a1f2d4e7a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
    comp = wire.completions_from_upstream(data("togetherai", "completions.json"), "mistralai/Mixtral-8x7B-v0.1")
    CompletionsResponse().load(comp)
    assert comp["choices"] == [{"index": 0, "text": " Paris, the city of light", "finish_reason": "length"}]


@responses.activate
def test_calls_are_exact():
    auth = matchers.header_matcher({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    responses.post(f"{BASE}/chat/completions", json=data("togetherai", "chat.json"), match=[auth])
    responses.post(f"{BASE}/completions", json=data("togetherai", "completions.json"), match=[auth])
    responses.post(f"{BASE}/embeddings", json=data("togetherai", "embeddings.json"), match=[auth])
    p = provider()
    p.chat(load(CHAT, {"messages": [USER], "max_tokens": 20, "temperature": 0.2, "top_k": 50}))
    p.completions(load(COMPLETIONS, {"prompt": "Paris is", "max_tokens": 7}))
    emb = provider("togethercomputer/m2-bert-80M-8k-retrieval").embeddings(load(EMBEDDINGS, {"input": "hello"}))
    chat_body, comp_body, emb_body = (sent_json(c) for c in responses.calls)
    assert [c.request.url for c in responses.calls] == [f"{BASE}/chat/completions", f"{BASE}/completions", f"{BASE}/embeddings"]
    assert chat_body == {"model": MODEL, "messages": [USER], "max_tokens": 20, "temperature": 0.2, "top_k": 50}
    assert comp_body == {"model": MODEL, "prompt": "Paris is", "max_tokens": 7}
    assert emb_body == {"model": "togethercomputer/m2-bert-80M-8k-retrieval", "input": "hello"}
    validate_request(SPEC, "/chat/completions", chat_body)
    validate_request(SPEC, "/completions", comp_body)
    validate_request(SPEC, "/embeddings", emb_body)
    EmbeddingsResponse().load(emb)
    assert emb["usage"] is None and emb["data"][0]["embedding"] == [0.2633, 0.1376, -0.0468]


@responses.activate
def test_streams_clean_chunks_and_usage():
    responses.post(f"{BASE}/chat/completions", body=data("togetherai", "stream_chat.sse"), content_type="text/event-stream")
    responses.post(f"{BASE}/completions", body=data("togetherai", "stream_completions.sse"), content_type="text/event-stream")
    p = provider()
    chat = list(p.chat_stream(load(CHAT, {"messages": [USER], "stream": True})))
    comp = list(p.completions_stream(load(COMPLETIONS, {"prompt": "Paris is", "stream": True})))
    assert sent_json(responses.calls[0])["stream"] is True
    validate_request(SPEC, "/chat/completions", sent_json(responses.calls[0]))
    validate_request(SPEC, "/completions", sent_json(responses.calls[1]))
    for c in chat:
        ChatChunk().load(c)
    for c in comp:
        CompletionsChunk().load(c)
    assert [c["choices"][0]["delta"] for c in chat] == [{"content": " Par"}, {"content": "is."}]
    assert chat[-1]["choices"][0]["finish_reason"] == "stop"
    assert chat[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14} and "usage" not in chat[0]
    assert [c["choices"][0]["text"] for c in comp] == [" Paris", ","]
    assert comp[-1]["choices"][0]["finish_reason"] == "length" and comp[-1]["object"] == "text_completion"


@pytest.mark.parametrize("name,message", [("stream_truncated.sse", "without \\[DONE\\]"),
                                          ("stream_error.sse", "mid-stream: Internal server error")])
@responses.activate
def test_stream_failures_raise(name, message):
    responses.post(f"{BASE}/chat/completions", body=data("togetherai", name), content_type="text/event-stream")
    with pytest.raises(UpstreamError, match=message):
        list(provider().chat_stream(load(CHAT, {"messages": [USER], "stream": True})))


@pytest.mark.parametrize("file,status,headers,expect_status,expect_headers,code", [
    ("error_401.json", 401, {}, 401, {}, "invalid_api_key"),
    ("error_400.json", 400, {}, 400, {}, None),
    ("error_429.json", 429, {"Retry-After": "2"}, 429, {"Retry-After": "2"}, "rate_limit_exceeded"),
    (None, 503, {}, 503, {}, None),
    (None, 500, {}, 502, {}, None),
])
@responses.activate
def test_error_mapping(file, status, headers, expect_status, expect_headers, code):
    if file:
        responses.post(f"{BASE}/chat/completions", json=data("togetherai", file), status=status, headers=headers)
    else:
        responses.post(f"{BASE}/chat/completions", body=b"upstream down", status=status)
    with pytest.raises(UpstreamError) as info:
        provider().chat(load(CHAT, {"messages": [USER]}))
    err = info.value
    assert (err.status, err.headers, err.code) == (expect_status, expect_headers, code)
    assert KEY not in err.message


@pytest.mark.parametrize("status,body,headers,retry", [
    (400, {"error": {"message": "Rate limit reached", "type": "invalid_request_error", "param": None, "code": "rate_limit"}},
     {}, None),
    (429, {"error": {"message": "slow down", "type": "rate_limit", "param": None, "code": None}}, {"retry-after-ms": "1500"}, "2"),
])
@responses.activate
def test_rate_limit_variants_become_429(status, body, headers, retry):
    responses.post(f"{BASE}/chat/completions", json=body, status=status, headers=headers)
    with pytest.raises(UpstreamError) as info:
        provider().chat(load(CHAT, {"messages": [USER]}))
    assert info.value.status == 429 and info.value.headers.get("Retry-After") == retry


CONFIG = f"""
endpoints:
  - name: t-chat
    endpoint_type: llm/v1/chat
    model: {{provider: togetherai, name: {MODEL}, config: {{togetherai_api_key: {KEY}, togetherai_api_base: "{BASE}"}}}}
  - name: t-completions
    endpoint_type: llm/v1/completions
    model: {{provider: togetherai, name: mistralai/Mixtral-8x7B-v0.1, config: {{togetherai_api_key: {KEY}, togetherai_api_base: "{BASE}"}}}}
"""


@responses.activate
def test_routes(make_app):
    client = make_app(CONFIG).test_client()
    responses.post(f"{BASE}/completions", body=data("togetherai", "stream_completions.sse"), content_type="text/event-stream")
    responses.post(f"{BASE}/chat/completions", json=data("togetherai", "error_401.json"), status=401)
    r = client.post("/v1/completions", json={"model": "t-completions", "prompt": "Paris is", "stream": True})
    got = events(r.data)
    assert r.status_code == 200 and got[-1] == "[DONE]" and got[-2]["usage"]["total_tokens"] == 8
    r = client.post("/endpoints/t-chat/invocations", json={"messages": [USER]})
    assert r.status_code == 401 and "Invalid API key" in r.json["detail"] and KEY not in r.get_data(as_text=True)
    for call in responses.calls:
        validate_request(SPEC, call.request.url.removeprefix(BASE), sent_json(call))


def test_example_config_loads(monkeypatch):
    endpoints = example_endpoints("togetherai.yaml", monkeypatch, TOGETHER_API_KEY=KEY)
    assert [e.name for e in endpoints] == ["together-chat", "together-completions", "together-embeddings"]
