"""Cohere provider: pure translation tables, exact upstream calls, streams and error mapping."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import responses
import sseclient

from app import config
from app.errors import ConfigError, InvalidRequest, UpstreamError, UpstreamTimeout
from app.providers import cohere
from app.providers.cohere_stream import StreamTranslator, chat_finish, to_usage
from tests.providers.util import USER, WEATHER_TOOL, check_text_stream, example_endpoints, read_stream
from tests.upstream_spec import load_spec, validate_request

DATA = Path(__file__).resolve().parents[1] / "data" / "cohere"
SPEC = "cohere.openapi.yaml"
KEY = "co-test-key-1a2b3c4d5e6f"
BASE = "http://cohere.test"
CHAT_URL = f"{BASE}/v2/chat"
EMBED_URL = f"{BASE}/v2/embed"

CONFIG = f"""
endpoints:
  - name: command
    endpoint_type: llm/v1/chat
    model:
      provider: cohere
      name: command-r-plus-08-2024
      config: {{cohere_api_key: {KEY}, cohere_api_base: "{BASE}"}}
  - name: command-text
    endpoint_type: llm/v1/completions
    model:
      provider: cohere
      name: command-r-08-2024
      config: {{cohere_api_key: {KEY}, cohere_api_base: "{BASE}"}}
  - name: embed
    endpoint_type: llm/v1/embeddings
    model:
      provider: cohere
      name: embed-english-v3.0
      config: {{cohere_api_key: {KEY}, cohere_api_base: "{BASE}"}}
"""

COHERE_TOOL = {"type": "function", "function": {
    "name": "get_weather", "parameters": WEATHER_TOOL["function"]["parameters"], "description": "Current weather for a city."}}


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def body_json(name: str) -> dict:
    return json.loads(data(name))


# ----- pure translation ----------------------------------------------------------------------

TO_UPSTREAM = [
    (
        "sampling: temperature halved, top_p -> p, top_k -> k, stop -> stop_sequences",
        {"messages": [{"role": "system", "content": "Be brief."}, USER], "temperature": 0.6, "top_p": 0.5,
         "top_k": 40, "stop": "END", "max_tokens": 50, "seed": 7},
        {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, USER], "max_tokens": 50,
         "temperature": 0.3, "p": 0.5, "k": 40, "stop_sequences": ["END"], "seed": 7},
    ),
    (
        "top_p clamped into 0.01-0.99; developer -> system; text parts",
        {"messages": [{"role": "developer", "content": [{"type": "text", "text": "Rules."}]},
                      {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "top_p": 1.0},
        {"model": "m", "messages": [{"role": "system", "content": "Rules."},
                                    {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "p": 0.99},
    ),
    (
        "image parts pass as image_url content",
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
        {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
    ),
    (
        "top_p 0 -> 0.01; max_completion_tokens",
        {"messages": [USER], "top_p": 0.0, "max_completion_tokens": 9},
        {"model": "m", "messages": [USER], "max_tokens": 9, "p": 0.01},
    ),
    (
        "tools both ways: assistant tool_calls, tool results, required",
        {"messages": [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
        ], "tools": [WEATHER_TOOL], "tool_choice": "required"},
        {"model": "m", "messages": [
            USER,
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
        ], "tools": [COHERE_TOOL], "tool_choice": "REQUIRED"},
    ),
    (
        "tool_choice none and auto; response_format json_schema",
        {"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": "none",
         "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
        {"model": "m", "messages": [USER], "tools": [COHERE_TOOL], "tool_choice": "NONE",
         "response_format": {"type": "json_object", "json_schema": {"type": "object"}}},
    ),
    (
        "auto tool_choice is Cohere's default (omitted)",
        {"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": "auto", "stream": True, "parallel_tool_calls": True},
        {"model": "m", "messages": [USER], "stream": True, "tools": [COHERE_TOOL]},
    ),
    (
        "completions prompt becomes one user message",
        {"prompt": "Once upon a time", "max_tokens": 16, "temperature": 2.0},
        {"model": "m", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 16, "temperature": 1.0},
    ),
]


@pytest.mark.parametrize("request_, expected", [c[1:] for c in TO_UPSTREAM], ids=[c[0] for c in TO_UPSTREAM])
def test_to_upstream(request_: dict, expected: dict) -> None:
    body = cohere.to_upstream(request_, "m")
    assert body == expected
    validate_chat(body)


def validate_chat(body: dict) -> None:
    """Validate against the spec; `response_format` is checked against the schema its
    discriminator picks, since jsonschema ignores OpenAPI discriminators and the spec's oneOf
    branches both match any object with a `type`."""
    body = dict(body)
    fmt = body.pop("response_format", None)
    validate_request(SPEC, "/v2/chat", body)
    if fmt is not None:
        spec = load_spec(SPEC)
        ref = {"text": "ChatTextResponseFormatV2", "json_object": "JsonResponseFormatV2"}[fmt["type"]]
        jsonschema.Draft202012Validator({**spec, "$ref": f"#/components/schemas/{ref}"}).validate(fmt)


REJECTED = [
    ({"messages": [USER], "n": 2}, "n"),
    ({"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
    ({"messages": [USER], "stop": ["1", "2", "3", "4", "5", "6"]}, "stop"),
    ({"messages": [USER], "top_k": 501}, "top_k"),
    ({"messages": [USER], "user": "u-1"}, "user"),
    ({"messages": [USER], "response_format": {"type": "json_schema"}}, "response_format"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"messages": [USER], "tools": [WEATHER_TOOL], "parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"messages": [USER], "tool_choice": "required"}, "tool_choice"),
    ({"messages": [USER], "logprobs": True}, "logprobs"),
]


@pytest.mark.parametrize("request_, param", REJECTED, ids=[p for _, p in REJECTED])
def test_to_upstream_rejects_what_cohere_cannot_do(request_: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        cohere.to_upstream(request_, "m")
    assert info.value.param == param
    assert param in info.value.message and "Cohere" in info.value.message


def test_embed_translation() -> None:
    body = cohere.to_embed({"input": ["hello", "goodbye"], "dimensions": 512}, "embed-v4.0")
    assert body == {"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "search_document",
                    "embedding_types": ["float"], "output_dimension": 512}
    validate_request(SPEC, "/v2/embed", body)
    query = cohere.to_embed({"input": "what is up", "input_type": "search_query", "truncate": "END"}, "m")
    assert query["input_type"] == "search_query" and query["texts"] == ["what is up"] and query["truncate"] == "END"
    validate_request(SPEC, "/v2/embed", query)
    for bad, param in (({"input": ["x"] * 97}, "input"), ({"input": "x", "encoding_format": "base64"}, "encoding_format"),
                       ({"input": "x", "user": "u"}, "user"), ({"input": "x", "input_type": "query"}, "input_type")):
        with pytest.raises(InvalidRequest) as info:
            cohere.to_embed(bad, "m")
        assert info.value.param == param
    reply = cohere.from_embed(body_json("embed.json"), "embed-english-v3.0")
    assert [d["embedding"] for d in reply["data"]] == body_json("embed.json")["embeddings"]["float"]
    assert reply["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


@pytest.mark.parametrize("native, unified", [
    ("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls"),
    ("ERROR_TOXIC", "content_filter"), ("ERROR_LIMIT", "length"), ("USER_CANCEL", "stop"), (None, None),
])
def test_finish_reason_table(native, unified) -> None:
    assert chat_finish(native, True) == unified


def test_failed_finish_reasons() -> None:
    assert chat_finish("ERROR", True) == "stop"  # text came back: keep it, as the table says
    with pytest.raises(UpstreamError):
        chat_finish("ERROR", False)
    with pytest.raises(UpstreamTimeout):
        chat_finish("TIMEOUT", False)


def test_usage_tokens_then_billed_units() -> None:
    assert to_usage(body_json("chat_text.json")["usage"]) == {"prompt_tokens": 215, "completion_tokens": 2, "total_tokens": 217}
    assert to_usage(body_json("chat_billed_only.json")["usage"]) == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert to_usage(None) is None


def test_from_upstream() -> None:
    text = cohere.from_upstream(body_json("chat_text.json"), "command-r")
    assert text["model"] == "command-r" and text["id"] == "5a9c0b0e-0b8f-4d44-9a1c-2f4e4b3c1d10"
    assert text["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}
    tools = cohere.from_upstream(body_json("chat_tool_call.json"), "m")["choices"][0]
    assert tools["finish_reason"] == "tool_calls"
    assert tools["message"] == {"role": "assistant", "content": None, "tool_calls": [{
        "id": "get_weather_1byjy32y4hvq", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location":"Paris, France"}'}}]}


def _events(raw: bytes) -> list[tuple[str, dict]]:
    return [(e.event, json.loads(e.data)) for e in sseclient.SSEClient([raw]).events() if e.data]


def test_stream_translator_tool_calls() -> None:
    translator = StreamTranslator("m", "chat", include_usage=True)
    chunks = [c for name, d in _events(data("stream_tool_call.sse")) for c in translator.feed(name, d)]
    assert translator.done
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1]["tool_calls"][0] == {"index": 0, "id": "get_weather_nsz5zm3w56q3", "type": "function",
                                          "function": {"name": "get_weather", "arguments": ""}}
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:] if "tool_calls" in d)
    assert json.loads(args) == {"location": "Paris, France"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 1061, "completion_tokens": 51, "total_tokens": 1112}


# ----- config ------------------------------------------------------------------------------------


def test_config() -> None:
    assert len(config.parse(CONFIG)) == 3
    with pytest.raises(ConfigError, match="cohere_api_key"):
        config.parse(CONFIG.replace(f"cohere_api_key: {KEY}, ", ""))
    [endpoint] = config.parse(CONFIG.split("  - name: command-text")[0].replace(f', cohere_api_base: "{BASE}"', ""))
    assert cohere.CohereProvider.base_url(endpoint.config) == "https://api.cohere.com"


def test_example_config_loads(monkeypatch) -> None:
    endpoints = example_endpoints("cohere.yaml", monkeypatch, COHERE_API_KEY="from-the-environment")
    assert len(endpoints) == 3
    assert {e.provider for e in endpoints} == {"cohere"}
    assert all(e.config["cohere_api_key"] == "from-the-environment" for e in endpoints)


# ----- through the app, upstream mocked with `responses` -------------------------------------


@pytest.fixture
def client(make_app):
    return make_app(CONFIG).test_client()


def sent(upstream, url: str = CHAT_URL, path: str = "/v2/chat", index: int = 0) -> dict:
    call = upstream.calls[index]
    assert call.request.url == url
    assert call.request.headers["Authorization"] == f"Bearer {KEY}"
    assert call.request.headers["Content-Type"] == "application/json"
    body = json.loads(call.request.body)
    if path == "/v2/chat":
        validate_chat(body)
    else:
        validate_request(SPEC, path, body)
    return body


def test_chat_on_v1_and_mlflow_routes(client, upstream) -> None:
    upstream.add(responses.POST, CHAT_URL, json=body_json("chat_text.json"))
    upstream.add(responses.POST, CHAT_URL, json=body_json("chat_tool_call.json"))
    one = client.post("/v1/chat/completions", json={"model": "command", "messages": [USER], "temperature": 0.6})
    assert one.status_code == 200
    assert one.get_json()["choices"][0]["message"]["content"] == "Paris."
    assert one.get_json()["usage"] == {"prompt_tokens": 215, "completion_tokens": 2, "total_tokens": 217}
    assert sent(upstream) == {"model": "command-r-plus-08-2024", "messages": [USER], "temperature": 0.3}
    two = client.post("/endpoints/command/invocations", json={"messages": [USER], "tools": [WEATHER_TOOL]})
    assert two.status_code == 200
    assert two.get_json()["choices"][0]["finish_reason"] == "tool_calls"
    assert sent(upstream, index=1)["tools"] == [COHERE_TOOL]


def test_completions_and_embeddings(client, upstream) -> None:
    upstream.add(responses.POST, CHAT_URL, json=body_json("chat_billed_only.json"))
    upstream.add(responses.POST, EMBED_URL, json=body_json("embed.json"))
    upstream.add(responses.POST, EMBED_URL, json=body_json("embed.json"))
    text = client.post("/gateway/command-text/invocations", json={"prompt": "Tell a story", "max_tokens": 3})
    assert text.get_json()["choices"] == [{"index": 0, "text": "Once upon a", "finish_reason": "length"}]
    assert sent(upstream) == {"model": "command-r-08-2024", "messages": [{"role": "user", "content": "Tell a story"}], "max_tokens": 3}
    emb = client.post("/v1/embeddings", json={"model": "embed", "input": ["hello", "goodbye"]})
    assert emb.status_code == 200
    assert len(emb.get_json()["data"]) == 2 and emb.get_json()["data"][1]["index"] == 1
    assert sent(upstream, EMBED_URL, "/v2/embed", 1) == {
        "model": "embed-english-v3.0", "texts": ["hello", "goodbye"], "input_type": "search_document", "embedding_types": ["float"]}
    emb = client.post("/endpoints/embed/invocations", json={"input": "hello", "input_type": "search_query"})
    assert emb.status_code == 200
    assert sent(upstream, EMBED_URL, "/v2/embed", 2)["input_type"] == "search_query"


def test_named_tool_choice_rejected(client, upstream) -> None:
    resp = client.post("/v1/chat/completions", json={
        "model": "command", "messages": [USER], "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert resp.status_code == 400 and resp.get_json()["error"]["param"] == "tool_choice"
    assert len(upstream.calls) == 0


def _strip_event_lines(raw: bytes) -> bytes:
    return re.sub(rb"(?m)^event: .*\n", b"", raw)


@pytest.mark.parametrize("framing", ["named", "data-only"])
def test_stream_text(client, upstream, framing) -> None:
    raw = data("stream_text.sse")
    upstream.add(responses.POST, CHAT_URL, status=200, content_type="text/event-stream",
                 body=raw if framing == "named" else _strip_event_lines(raw))
    resp = client.post("/v1/chat/completions", json={
        "model": "command", "messages": [USER], "stream": True, "stream_options": {"include_usage": True}})
    check_text_stream(read_stream(resp), "Paris is the capital.",
                      {"prompt_tokens": 215, "completion_tokens": 6, "total_tokens": 221})
    assert sent(upstream)["stream"] is True


def test_ndjson_stream_accepted(client, upstream) -> None:
    upstream.add(responses.POST, CHAT_URL, status=200, content_type="application/stream+json", body=data("stream_v1.ndjson"))
    resp = client.post("/v1/completions", json={"model": "command-text", "prompt": "Capital?", "stream": True,
                                                "stream_options": {"include_usage": True}})
    chunks = read_stream(resp)[:-1]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "Paris is the capital."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 215


# ----- errors ------------------------------------------------------------------------------------

ERRORS = [
    (400, "error_400.json", {}, 400, "at least 1 token"),
    (401, "error_401.json", {}, 401, "invalid api token"),
    (429, "error_429.json", {"Retry-After": "30"}, 429, "Trial key"),
    (503, "error_503.json", {}, 503, "service unavailable"),
    (500, "error_500.json", {}, 502, "internal server error"),
]


@pytest.mark.parametrize("status, fixture, headers, expected, text", ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_upstream_errors_mapped(client, upstream, status, fixture, headers, expected, text) -> None:
    upstream.add(responses.POST, CHAT_URL, json=body_json(fixture), status=status, headers=headers)
    resp = client.post("/v1/chat/completions", json={"model": "command", "messages": [USER]})
    assert resp.status_code == expected
    assert text in resp.get_json()["error"]["message"]
    if status == 429:
        assert resp.headers["Retry-After"] == "30"
    assert KEY not in resp.get_data(as_text=True)


def test_error_on_mlflow_route_and_key_redacted(client, upstream) -> None:
    upstream.add(responses.POST, EMBED_URL, status=401, json={"message": f"invalid api token {KEY}"})
    resp = client.post("/endpoints/embed/invocations", json={"input": "x"})
    assert resp.status_code == 401
    assert "detail" in resp.get_json() and KEY not in resp.get_data(as_text=True)


def test_truncated_and_failed_streams(client, upstream) -> None:
    for name, needle in (("stream_truncated.sse", "without message-end"), ("stream_error_end.sse", "internal error")):
        upstream.add(responses.POST, CHAT_URL, status=200, content_type="text/event-stream", body=data(name))
        resp = client.post("/v1/chat/completions", json={"model": "command", "messages": [USER], "stream": True})
        events = read_stream(resp)
        assert "[DONE]" not in events
        assert needle in events[-1]["error"]["message"]


def test_done_before_message_end_is_an_error(make_app, upstream) -> None:
    provider = make_app(CONFIG).extensions["ai_gateway"].get("command").provider
    raw = data("stream_truncated.sse") + b"data: [DONE]\n\n"
    upstream.add(responses.POST, CHAT_URL, status=200, content_type="text/event-stream", body=raw)
    with pytest.raises(UpstreamError, match="without message-end"):
        list(provider.chat_stream({"messages": [USER], "stream": True}))


# Ask gunicorn to drop the connection after the reply, so its graceful stop need not wait.
CLOSE = {"Connection": "close"}


# ----- live: real gunicorn + gevent in front of a local fake Cohere -------------------------


def _live_stream(write_config, reply_chunks: list, content_type: str, route: str, body: dict,
                 interval: float) -> tuple[list, object]:
    """Serve `reply_chunks` from a fake Cohere behind real gunicorn; (arrival time, data) per event."""
    import time

    import requests

    from tests.live import FakeUpstream, Gunicorn, Reply

    def handler(seen) -> Reply:
        if seen.headers.get("Authorization") != f"Bearer {KEY}":
            return Reply(401, body_json("error_401.json"))
        return Reply(200, headers={"Content-Type": content_type}, chunks=reply_chunks, chunk_interval=interval)

    with FakeUpstream(handler) as fake:
        path = write_config(CONFIG.replace(BASE, fake.url))
        with Gunicorn(path, workers=1) as gw:
            started = time.monotonic()
            arrivals = []
            with requests.post(f"{gw.url}{route}", stream=True, timeout=10, headers=CLOSE, json=body) as resp:
                assert resp.status_code == 200
                for event in sseclient.SSEClient(resp).events():
                    arrivals.append((time.monotonic() - started, event.data))
    return arrivals, fake.requests[0]


def test_live_sse_stream_through_gunicorn(write_config) -> None:
    frames = [f + b"\n\n" for f in data("stream_tool_call.sse").split(b"\n\n") if f.strip()]
    arrivals, seen = _live_stream(write_config, frames, "text/event-stream", "/endpoints/command/invocations",
                                  {"messages": [USER], "tools": [WEATHER_TOOL], "stream": True}, 0.05)
    assert seen.path == "/v2/chat"
    validate_chat(seen.json())
    assert arrivals[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in arrivals[:-1]]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "Paris, France"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert arrivals[-1][0] - arrivals[0][0] > 0.2


def test_live_ndjson_stream_through_gunicorn(write_config) -> None:
    """Newline-delimited JSON (Cohere's v1 framing), one object per chunk, relayed as SSE."""
    lines = [line + b"\n" for line in data("stream_v1.ndjson").splitlines() if line.strip()]
    arrivals, _ = _live_stream(write_config, lines, "application/stream+json", "/v1/chat/completions",
                               {"model": "command", "messages": [USER], "stream": True,
                                "stream_options": {"include_usage": True}}, 0.1)
    assert arrivals[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in arrivals[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Paris is the capital."
    assert [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]][0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 215
    assert arrivals[-1][0] - arrivals[0][0] > 0.15  # relayed line by line, not buffered
