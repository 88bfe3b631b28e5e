"""Gemini (and the palm alias): translation tables, exact upstream calls, errors, streams, routes."""
from __future__ import annotations

import json
import signal

import pytest
import requests
import responses
from responses import matchers

from app.errors import UpstreamError
from app.providers import gemini_translate as wire
from app.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from app.providers.gemini import GeminiProvider, PalmProvider
from app.providers.gemini_stream import StreamTranslator
from app.schemas.chat import ChatChunk, ChatResponse
from app.schemas.completions import CompletionsResponse
from app.schemas.embeddings import EmbeddingsResponse
from tests.live import FakeUpstream, Gunicorn, Reply
from tests.providers.util import USER, data, events, example_endpoints, load, refusal, sent_json, session
from tests.upstream_spec import validate_request

SPEC = "gemini.openapi.json"
GENERATE = "/models/{modelsId}:generateContent"
STREAM = "/models/{modelsId}:streamGenerateContent"
KEY = "AIza-test-key-0123456789"
BASE = "http://gemini.test/v1beta"
URL = f"{BASE}/models/gemini-2.0-flash"

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}
TOOL_TURNS = [
    USER,
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"},
    {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
]


def provider(cls=GeminiProvider, model="gemini-2.0-flash", **config) -> GeminiProvider:
    key = "palm_api_key" if cls is PalmProvider else "gemini_api_key"
    base = "palm_api_base" if cls is PalmProvider else "gemini_api_base"
    return cls(model, {key: KEY, base: BASE, **config}, session=session())


# ----- pure translation ---------------------------------------------------------------------

CHAT_CASES = [
    ("minimal", {"messages": [USER]},
     {"contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}]}),
    ("system and developer become systemInstruction; assistant is model",
     {"messages": [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "No emoji."}, USER,
                   {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Spain?"}]},
     {"systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "No emoji."}]},
      "contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]},
                   {"role": "model", "parts": [{"text": "Paris."}]},
                   {"role": "user", "parts": [{"text": "And Spain?"}]}]}),
    ("sampling parameters map to generationConfig",
     {"messages": [USER], "temperature": 1.7, "top_p": 0.9, "top_k": 40, "n": 2, "max_tokens": 50, "stop": "\n\n",
      "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5},
     {"contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}],
      "generationConfig": {"temperature": 1.7, "topP": 0.9, "topK": 40, "candidateCount": 2, "maxOutputTokens": 50,
                           "stopSequences": ["\n\n"], "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5}}),
    ("max_completion_tokens wins over max_tokens; stop list",
     {"messages": [USER], "max_tokens": 10, "max_completion_tokens": 20, "stop": ["a", "b"]},
     {"contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}],
      "generationConfig": {"maxOutputTokens": 20, "stopSequences": ["a", "b"]}}),
    ("tools, forced function, tool calls and grouped tool results",
     {"messages": TOOL_TURNS, "tools": [WEATHER_TOOL],
      "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     {"contents": [
         {"role": "user", "parts": [{"text": "Capital of France?"}]},
         {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                     {"functionCall": {"name": "get_time", "args": {}}}]},
         {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                                    {"functionResponse": {"name": "get_time", "response": {"result": "14:05"}}}]}],
      "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
                                           "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"]}]}],
      "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}}),
    ("text and data-URL image parts; json_object response format",
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
      "response_format": {"type": "json_object"}},
     {"contents": [{"role": "user", "parts": [{"text": "What is this?"},
                                              {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}],
      "generationConfig": {"responseMimeType": "application/json"}}),
]


@pytest.mark.parametrize("label,request_,expected", CHAT_CASES, ids=[c[0] for c in CHAT_CASES])
def test_chat_to_upstream(label, request_, expected):
    body = wire.chat_to_upstream(load(CHAT, request_), "Gemini")
    assert body == expected
    validate_request(SPEC, GENERATE, body)


@pytest.mark.parametrize("choice,config", [
    ("auto", {"mode": "AUTO"}), ("required", {"mode": "ANY"}), ("none", {"mode": "NONE"}),
    ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
])
def test_tool_choice(choice, config):
    assert wire.tool_config(choice) == {"functionCallingConfig": config}


REJECTED = [
    (CHAT, {"messages": [USER], "logit_bias": {"1": 2}}, "logit_bias"),
    (CHAT, {"messages": [USER], "user": "u1"}, "user"),
    (CHAT, {"messages": [USER], "logprobs": True}, "logprobs"),
    (CHAT, {"messages": [USER], "parallel_tool_calls": False}, "parallel_tool_calls"),
    (CHAT, {"messages": [{"role": "user", "content": "hi", "name": "bob"}]}, "messages[0].name"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
     "messages[0].content"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "messages[0].content"),
    (CHAT, {"messages": [USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "messages[1].tool_call_id"),
    (CHAT, {"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    (CHAT, {"messages": [USER], "response_format": {"type": "grammar"}}, "response_format"),
    (COMPLETIONS, {"prompt": ["a", "b"]}, "prompt"),
    (COMPLETIONS, {"prompt": "a", "best_of": 2}, "best_of"),
    (COMPLETIONS, {"prompt": "a", "suffix": "z"}, "suffix"),
    (EMBEDDINGS, {"input": "a", "encoding_format": "base64"}, "encoding_format"),
    (EMBEDDINGS, {"input": "a", "user": "u"}, "user"),
]


@pytest.mark.parametrize("kind,request_,param", REJECTED, ids=[r[2] for r in REJECTED])
def test_unsupported_parameters_are_rejected(kind, request_, param):
    err = refusal(provider(), kind, request_)
    assert err.param == param
    assert "Gemini" in err.message


@pytest.mark.parametrize("raw,called,expected", [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"),
    ("SPII", False, "content_filter"), ("IMAGE_SAFETY", False, "content_filter"),
    ("MALFORMED_FUNCTION_CALL", False, "stop"), ("OTHER", False, "stop"), ("LANGUAGE", False, "stop"),
    ("FINISH_REASON_UNSPECIFIED", False, "stop"), (None, False, None),
])
def test_finish_reason(raw, called, expected):
    assert wire.finish_reason(raw, called) == expected


def test_chat_from_upstream_text_and_usage():
    out = wire.chat_from_upstream(data("gemini", "chat.json"), "gemini-2.0-flash", "Gemini")
    ChatResponse().load(out)
    assert out["id"] == "mJ1pZaBcDeFgHiJk"
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Paris.\n"}, "finish_reason": "stop"}]
    assert out["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def test_chat_from_upstream_function_call():
    out = wire.chat_from_upstream(data("gemini", "chat_tool_call.json"), "m", "Gemini")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "celsius"})}
    assert call["id"].startswith("call-") and call["type"] == "function"
    assert choice["message"]["content"] is None


def test_two_candidates_thinking_safety_and_blocked_prompt():
    two = wire.chat_from_upstream(data("gemini", "chat_two_candidates.json"), "m", "Gemini")
    assert [(c["index"], c["finish_reason"]) for c in two["choices"]] == [(0, "stop"), (1, "length")]
    think = wire.chat_from_upstream(data("gemini", "chat_thinking.json"), "m", "Gemini")
    assert think["choices"][0]["message"]["content"] == "Paris."
    assert think["usage"] == {"prompt_tokens": 9, "completion_tokens": 22, "total_tokens": 31}
    safety = wire.chat_from_upstream(data("gemini", "chat_safety.json"), "m", "Gemini")
    assert safety["choices"][0]["finish_reason"] == "content_filter"
    assert safety["usage"] == {"prompt_tokens": 12, "completion_tokens": None, "total_tokens": 12}
    blocked = wire.completions_from_upstream(data("gemini", "prompt_blocked.json"), "m", "Gemini")
    CompletionsResponse().load(blocked)
    assert blocked["choices"] == [{"index": 0, "text": "", "finish_reason": "content_filter"}]
    with pytest.raises(UpstreamError):
        wire.chat_from_upstream({"candidates": []}, "m", "Gemini")


def _cand(index, text=None, reason=None):
    cand = {"index": index, "content": {"role": "model", "parts": [{"text": text}] if text else []}}
    return {**cand, "finishReason": reason} if reason else cand


def test_stream_translator_two_candidates_and_usage_only_event():
    t = StreamTranslator("m", chat=True)
    first = t.feed({"candidates": [_cand(0, "A"), _cand(1, "B")], "responseId": "r1"})
    assert [(c["choices"][0]["index"], c["choices"][0]["delta"]) for c in first] == [
        (0, {"role": "assistant", "content": "A"}), (1, {"role": "assistant", "content": "B"})]
    assert [c["choices"][0]["finish_reason"] for c in t.feed({"candidates": [_cand(0, reason="STOP")]})] == ["stop"]
    assert t.feed({"usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 1}}) == []
    with pytest.raises(UpstreamError):  # candidate 1 never finished
        t.finish("Gemini")
    t.feed({"candidates": [_cand(1, reason="MAX_TOKENS")],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 4, "totalTokenCount": 5}})
    last = t.finish("Gemini")
    assert last["choices"] == [] and last["usage"] == {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
    assert last["id"] == "r1"


def test_stream_translator_completions_and_empty_stream():
    t = StreamTranslator("m", chat=False)
    [chunk] = t.feed({"candidates": [_cand(0, "Hi", "STOP")]})
    assert chunk["object"] == "text_completion" and chunk["choices"][0] == {"index": 0, "text": "Hi", "finish_reason": "stop"}
    assert t.finish("Gemini") is None  # no usage reported: no usage chunk
    with pytest.raises(UpstreamError):
        StreamTranslator("m", chat=True).finish("Gemini")


# ----- exact upstream calls (responses) -------------------------------------------------------


def validate_all(calls) -> None:
    """Check every body sent upstream against the spec path its URL names."""
    for call in calls:
        method = call.request.url.split("?")[0].rsplit(":", 1)[1]
        validate_request(SPEC, "/models/{modelsId}:" + method, sent_json(call))


def _no_key_in_url(call):
    assert KEY not in call.request.url and "key=" not in call.request.url


@responses.activate
def test_chat_call_is_exact():
    rsp = responses.post(f"{URL}:generateContent", json=data("gemini", "chat.json"),
                         match=[matchers.header_matcher({"x-goog-api-key": KEY, "Content-Type": "application/json"})])
    out = provider().chat(load(CHAT, {"messages": [{"role": "system", "content": "Be brief."}, USER],
                                      "temperature": 0.2, "max_tokens": 50}))
    assert rsp.call_count == 1
    call = responses.calls[0]
    assert call.request.url == f"{URL}:generateContent"
    _no_key_in_url(call)
    body = sent_json(call)
    assert body == {"systemInstruction": {"parts": [{"text": "Be brief."}]},
                    "contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}],
                    "generationConfig": {"temperature": 0.2, "maxOutputTokens": 50}}
    validate_request(SPEC, GENERATE, body)
    assert out["choices"][0]["message"]["content"] == "Paris.\n"


@responses.activate
def test_completions_call_and_models_prefix():
    responses.post(f"{URL}:generateContent", json=data("gemini", "chat_two_candidates.json"))
    out = provider(model="models/gemini-2.0-flash").completions(load(COMPLETIONS, {"prompt": "Capital of France?", "n": 2}))
    body = sent_json(responses.calls[0])
    assert body == {"contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}],
                    "generationConfig": {"candidateCount": 2}}
    validate_request(SPEC, GENERATE, body)
    CompletionsResponse().load(out)
    assert [c["text"] for c in out["choices"]] == ["Paris.", "It is Par"]


@responses.activate
def test_embeddings_single_and_batch():
    responses.post(f"{BASE}/models/text-embedding-004:embedContent", json=data("gemini", "embed.json"))
    responses.post(f"{BASE}/models/text-embedding-004:batchEmbedContents", json=data("gemini", "batch_embed.json"))
    p = provider(model="text-embedding-004")
    one = p.embeddings(load(EMBEDDINGS, {"input": "hello", "dimensions": 4}))
    many = p.embeddings(load(EMBEDDINGS, {"input": ["a", "b"]}))
    single_body, batch_body = sent_json(responses.calls[0]), sent_json(responses.calls[1])
    assert single_body == {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 4}
    assert batch_body == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}}]}
    validate_request(SPEC, "/models/{modelsId}:embedContent", single_body)
    validate_request(SPEC, "/models/{modelsId}:batchEmbedContents", batch_body)
    EmbeddingsResponse().load(one)
    assert one["data"][0]["embedding"][0] == pytest.approx(0.013168523) and one["usage"] is None
    assert [d["embedding"] for d in many["data"]] == [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]


@responses.activate
def test_palm_alias_calls_gemini_api_with_its_own_key():
    responses.post(f"{URL}:generateContent", json=data("gemini", "chat.json"),
                   match=[matchers.header_matcher({"x-goog-api-key": KEY})])
    out = provider(PalmProvider).chat(load(CHAT, {"messages": [USER]}))
    assert out["choices"][0]["message"]["content"] == "Paris.\n"


def test_check_model_rejects_path_tricks():
    assert GeminiProvider.check_model(CHAT, "gemini-2.0-flash", {}) is None
    assert GeminiProvider.check_model(CHAT, "models/gemini-2.0-flash", {}) is None
    for bad in ("../x", "gemini:generateContent?key=1", "a/b/c", ""):
        assert GeminiProvider.check_model(CHAT, bad, {})


# ----- streaming --------------------------------------------------------------------------------


def _stream(name: str, chat: bool = True, **req):
    responses.post(f"{URL}:streamGenerateContent", body=data("gemini", name), content_type="text/event-stream",
                   match=[matchers.query_param_matcher({"alt": "sse"})])
    p = provider()
    if chat:
        return list(p.chat_stream(load(CHAT, {"messages": [USER], "stream": True, **req})))
    return list(p.completions_stream(load(COMPLETIONS, {"prompt": "Capital of France?", "stream": True, **req})))


@pytest.mark.parametrize("name", ["stream.sse", "stream_crlf.sse"])
@responses.activate
def test_chat_stream_ends_at_eof_with_usage(name):
    chunks = _stream(name)
    call = responses.calls[0]
    assert call.request.url == f"{URL}:streamGenerateContent?alt=sse"
    _no_key_in_url(call)
    validate_request(SPEC, STREAM, sent_json(call))
    for c in chunks:
        ChatChunk().load(c)
    assert [c["choices"][0]["delta"] for c in chunks[:2]] == [{"role": "assistant", "content": "Par"}, {"content": "is.\n"}]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:2]] == [None, "stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert {c["id"] for c in chunks} == {"stream-1"}


@responses.activate
def test_completions_stream():
    chunks = _stream("stream.sse", chat=False)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "Paris.\n"
    assert chunks[1]["choices"][0]["finish_reason"] == "stop" and chunks[1]["object"] == "text_completion"


@responses.activate
def test_stream_tool_call_and_blocked_prompt():
    chunks = _stream("stream_tool_call.sse")
    delta = chunks[0]["choices"][0]["delta"]
    assert delta["tool_calls"][0]["index"] == 0
    assert delta["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}
    assert chunks[0]["choices"][0]["finish_reason"] == "tool_calls"
    responses.reset()
    blocked = _stream("stream_blocked.sse")
    assert blocked[0]["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize("name,message", [("stream_truncated.sse", "ended before a finishReason"),
                                          ("stream_error.sse", "overloaded")])
@responses.activate
def test_stream_failures_raise(name, message):
    with pytest.raises(UpstreamError, match=message):
        _stream(name)


# ----- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("file,status,headers,expect_status,expect_headers", [
    ("error_api_key.json", 400, {}, 401, {}),
    ("error_400.json", 400, {}, 400, {}),
    ("error_404.json", 404, {}, 404, {}),
    ("error_429.json", 429, {}, 429, {"Retry-After": "32"}),
    ("error_429.json", 429, {"Retry-After": "7"}, 429, {"Retry-After": "7"}),
    ("error_503.json", 503, {}, 503, {}),
    ("error_500.json", 500, {}, 502, {}),
])
@responses.activate
def test_error_mapping(file, status, headers, expect_status, expect_headers):
    body = data("gemini", file)
    body["error"]["message"] += f" (key {KEY})"  # a key echoed upstream must not leak
    responses.post(f"{URL}:generateContent", json=body, status=status, headers=headers)
    with pytest.raises(UpstreamError) as info:
        provider().chat(load(CHAT, {"messages": [USER]}))
    err = info.value
    assert err.status == expect_status
    assert err.headers == expect_headers
    assert KEY not in err.message


# ----- through the Flask app, both route families ------------------------------------------------

CONFIG = f"""
endpoints:
  - name: g-chat
    endpoint_type: llm/v1/chat
    model: {{provider: gemini, name: gemini-2.0-flash, config: {{gemini_api_key: {KEY}, gemini_api_base: "{BASE}"}}}}
  - name: g-completions
    endpoint_type: llm/v1/completions
    model: {{provider: palm, name: gemini-2.0-flash, config: {{palm_api_key: {KEY}, palm_api_base: "{BASE}"}}}}
  - name: g-embed
    endpoint_type: llm/v1/embeddings
    model: {{provider: gemini, name: text-embedding-004, config: {{gemini_api_key: {KEY}, gemini_api_base: "{BASE}"}}}}
"""


@responses.activate
def test_routes_chat_completions_embeddings(make_app):
    client = make_app(CONFIG).test_client()
    responses.post(f"{URL}:generateContent", json=data("gemini", "chat.json"))
    responses.post(f"{BASE}/models/text-embedding-004:batchEmbedContents", json=data("gemini", "batch_embed.json"))
    r = client.post("/v1/chat/completions", json={"model": "g-chat", "messages": [USER]})
    assert r.status_code == 200 and r.json["choices"][0]["message"]["content"] == "Paris.\n"
    r = client.post("/endpoints/g-completions/invocations", json={"prompt": "Capital of France?"})
    assert r.status_code == 200 and r.json["choices"][0]["text"] == "Paris.\n"
    r = client.post("/gateway/g-embed/invocations", json={"input": ["a", "b"]})
    assert r.status_code == 200 and len(r.json["data"]) == 2
    validate_all(responses.calls)


@responses.activate
def test_routes_stream_and_errors(make_app):
    client = make_app(CONFIG).test_client()
    responses.post(f"{URL}:streamGenerateContent", body=data("gemini", "stream.sse"), content_type="text/event-stream")
    r = client.post("/v1/chat/completions", json={"model": "g-chat", "messages": [USER], "stream": True})
    got = events(r.data)
    assert r.status_code == 200 and got[-1] == "[DONE]"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in got[:-1] if e["choices"]) == "Paris.\n"

    responses.replace(responses.POST, f"{URL}:streamGenerateContent", body=data("gemini", "stream_truncated.sse"),
                      content_type="text/event-stream")
    r = client.post("/endpoints/g-chat/invocations", json={"messages": [USER], "stream": True})
    got = events(r.data)
    assert "[DONE]" not in got and "finishReason" in got[-1]["error"]["message"]

    responses.replace(responses.POST, f"{URL}:streamGenerateContent", json=data("gemini", "error_429.json"), status=429)
    r = client.post("/v1/chat/completions", json={"model": "g-chat", "messages": [USER], "stream": True})
    assert r.status_code == 429 and r.headers["Retry-After"] == "32"

    r = client.post("/v1/chat/completions", json={"model": "g-chat", "messages": [USER], "logit_bias": {"1": 1}})
    assert r.status_code == 400 and r.json["error"]["param"] == "logit_bias"
    r = client.post("/endpoints/g-chat/invocations", json={"messages": [USER], "logit_bias": {"1": 1}})
    assert r.status_code == 422 and "logit_bias" in r.json["detail"]

    responses.post(f"{URL}:generateContent", json=data("gemini", "error_api_key.json"), status=400)
    r = client.post("/v1/chat/completions", json={"model": "g-chat", "messages": [USER]})
    assert r.status_code == 401 and KEY not in r.get_data(as_text=True)
    validate_all(responses.calls)


# ----- live: real gunicorn + gevent in front of a local fake Gemini ---------------------------------


def test_live_gemini_sse_framing_through_gunicorn(write_config):
    """Gemini ends streams by EOF (no [DONE]) and may use CRLF; clients get OpenAI framing."""
    stream = data("gemini", "stream_crlf.sse")
    truncated = data("gemini", "stream_truncated.sse")

    def handler(seen):
        if seen.headers.get("x-goog-api-key") != KEY or "key=" in seen.path:
            return Reply(400, data("gemini", "error_api_key.json"))
        body = truncated if b"truncate me" in seen.body else stream
        # Split mid-event, so the gateway must reassemble SSE frames across reads.
        pieces = [body[i:i + 37] for i in range(0, len(body), 37)]
        return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=pieces, chunk_interval=0.005)

    with FakeUpstream(handler) as fake:
        path = write_config(f"""
            endpoints:
              - name: g-chat
                endpoint_type: llm/v1/chat
                model: {{provider: gemini, name: gemini-2.0-flash, config: {{gemini_api_key: {KEY}, gemini_api_base: "{fake.url}/v1beta"}}}}
            """)
        with Gunicorn(path, workers=1) as gw:
            r = requests.post(gw.url + "/v1/chat/completions", timeout=10,
                              json={"model": "g-chat", "stream": True, "messages": [USER]})
            got = events(r.content)
            assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            assert got[-1] == "[DONE]"
            assert "".join(e["choices"][0]["delta"].get("content", "") for e in got[:-1] if e["choices"]) == "Paris.\n"
            assert got[-2]["usage"]["total_tokens"] == 12
            assert fake.requests[0].path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"

            r = requests.post(gw.url + "/v1/chat/completions", timeout=10,
                              json={"model": "g-chat", "stream": True, "messages": [{"role": "user", "content": "truncate me"}]})
            got = events(r.content)
            assert "[DONE]" not in got and "finishReason" in got[-1]["error"]["message"]
            assert KEY not in gw.log()
            for seen in fake.requests:
                validate_request(SPEC, STREAM, seen.json())
            gw.stop(signal.SIGINT)  # quick shutdown: graceful draining is not under test here


# ----- config --------------------------------------------------------------------------------------


def test_example_config_loads_and_config_errors(monkeypatch):
    from app.config import parse
    from app.errors import ConfigError

    endpoints = example_endpoints("gemini.yaml", monkeypatch, GEMINI_API_KEY=KEY, PALM_API_KEY=KEY)
    assert [e.name for e in endpoints] == ["gemini-chat", "gemini-completions", "gemini-embeddings", "palm-chat"]
    bad = """
    endpoints:
      - name: a
        endpoint_type: llm/v1/chat
        model: {provider: gemini, name: "gemini-2.0-flash:generateContent?key=x", config: {gemini_api_key: k}}
      - name: b
        endpoint_type: llm/v1/chat
        model: {provider: palm, name: gemini-2.0-flash, config: {gemini_api_key: k}}
    """
    with pytest.raises(ConfigError) as info:
        parse(bad)
    text = str(info.value)
    assert "not a Gemini model id" in text and "palm_api_key" in text and "gemini_api_key" in text
