"""The HTTP API through Flask's test client: both route families, listings and every error shape."""
from __future__ import annotations

import json

import pytest

from app.schemas.chat import ChatChunk, ChatResponse
from app.schemas.completions import CompletionsResponse
from app.schemas.embeddings import EmbeddingsResponse

CHAT = {"messages": [{"role": "user", "content": "hello big world"}]}


def sse_events(body: bytes) -> list[str]:
    return [block[len("data: "):] for block in body.decode().split("\n\n") if block.startswith("data: ")]


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json == {"status": "OK"}


@pytest.mark.parametrize("route", ["/endpoints/chat/invocations", "/gateway/chat/invocations"])
def test_mlflow_chat_routes(client, route):
    r = client.post(route, json=CHAT)
    assert r.status_code == 200
    assert ChatResponse().validate(r.json) == {}
    assert r.json["choices"][0]["message"]["content"] == "hello big world"
    assert r.json["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_openai_routes_for_all_three_types(client):
    chat = client.post("/v1/chat/completions", json={"model": "chat", **CHAT})
    assert chat.status_code == 200 and ChatResponse().validate(chat.json) == {}
    comp = client.post("/v1/completions", json={"model": "completions", "prompt": "a b c", "max_tokens": 2})
    assert comp.status_code == 200 and CompletionsResponse().validate(comp.json) == {}
    assert comp.json["choices"][0] == {"index": 0, "text": "a b", "finish_reason": "length"}
    emb = client.post("/v1/embeddings", json={"model": "embeddings", "input": ["x", "y z"]})
    assert emb.status_code == 200 and EmbeddingsResponse().validate(emb.json) == {}
    assert [d["index"] for d in emb.json["data"]] == [0, 1]
    assert emb.json["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_streaming_chat_is_sse_ending_in_done(client):
    r = client.post("/endpoints/chat/invocations", json={**CHAT, "stream": True})
    assert r.status_code == 200
    assert r.mimetype == "text/event-stream"
    assert r.headers["X-Accel-Buffering"] == "no" and r.headers["Cache-Control"] == "no-cache"
    events = sse_events(r.data)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        assert ChatChunk().validate(chunk) == {}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "hello big world"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_streaming_usage_on_request(client):
    r = client.post("/v1/chat/completions", json={
        "model": "chat", **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    chunks = [json.loads(e) for e in sse_events(r.data)[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


def test_listing_pages_and_single_endpoint(make_app):
    yaml_text = "endpoints:\n" + "".join(
        f"  - {{name: e{i}, endpoint_type: llm/v1/chat, model: {{provider: echo, name: m}}}}\n" for i in range(5)
    )
    client = make_app(yaml_text, AI_GATEWAY_PAGE_SIZE=2).test_client()
    names, token, pages = [], None, 0
    while True:
        r = client.get("/api/2.0/endpoints/", query_string={"page_token": token} if token else {})
        assert r.status_code == 200 and "next_page_token" in r.json
        names += [e["name"] for e in r.json["endpoints"]]
        token, pages = r.json["next_page_token"], pages + 1
        if token is None:
            break
    assert names == [f"e{i}" for i in range(5)] and pages == 3
    assert client.get("/api/2.0/endpoints").status_code == 200  # without the trailing slash
    one = client.get("/api/2.0/endpoints/e3")
    assert one.json == {"name": "e3", "endpoint_type": "llm/v1/chat", "model": {"name": "m", "provider": "echo"},
                        "endpoint_url": "/gateway/e3/invocations", "limit": None}
    bad = client.get("/api/2.0/endpoints/", query_string={"page_token": "garbage!"})
    assert bad.status_code == 422 and "page_token" in bad.json["detail"]


def test_listing_never_shows_secrets(make_app):
    client = make_app("""
endpoints:
  - name: gpt
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: gpt-4o-mini, config: {openai_api_key: sk-super-secret}}
""").test_client()
    for path in ("/api/2.0/endpoints/", "/api/2.0/endpoints/gpt", "/v1/models", "/v1/models/gpt"):
        r = client.get(path)
        assert r.status_code == 200 and b"sk-super-secret" not in r.data


def test_models(client):
    r = client.get("/v1/models")
    assert [m["id"] for m in r.json["data"]] == ["chat", "completions", "embeddings"]
    assert r.json["data"][0] == {"id": "chat", "object": "model", "created": 0, "owned_by": "echo"}
    assert client.get("/v1/models/nope").status_code == 404


class TestMlflowErrors:
    def test_invalid_input_is_422_detail(self, client):
        r = client.post("/endpoints/chat/invocations", json={"messages": [{"role": "user"}], "temperature": 5})
        assert r.status_code == 422
        assert "temperature" in r.json["detail"] and "messages.0.content" in r.json["detail"]

    def test_model_in_body_is_a_client_error(self, client):
        r = client.post("/endpoints/chat/invocations", json={**CHAT, "model": "gpt-4"})
        assert r.status_code == 422 and "model" in r.json["detail"]

    def test_unknown_endpoint_404(self, client):
        r = client.post("/endpoints/nope/invocations", json=CHAT)
        assert r.status_code == 404 and "nope" in r.json["detail"]
        assert client.get("/api/2.0/endpoints/nope").status_code == 404

    @pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"])
    def test_bad_bodies(self, client, body):
        r = client.post("/endpoints/chat/invocations", data=body, content_type="application/json")
        assert r.status_code == 422 and isinstance(r.json["detail"], str)

    def test_wrong_schema_for_endpoint_type(self, client):
        r = client.post("/endpoints/embeddings/invocations", json=CHAT)
        assert r.status_code == 422 and "input" in r.json["detail"]

    def test_embeddings_cannot_stream(self, client):
        r = client.post("/endpoints/embeddings/invocations", json={"input": "x", "stream": True})
        assert r.status_code == 422 and "stream" in r.json["detail"]


class TestOpenAIErrors:
    def envelope(self, r, status):
        assert r.status_code == status
        assert set(r.json["error"]) == {"message", "type", "param", "code"}
        return r.json["error"]

    def test_invalid_input_400(self, client):
        err = self.envelope(client.post("/v1/chat/completions", json={"model": "chat", **CHAT, "n": 0}), 400)
        assert err["type"] == "invalid_request_error" and err["param"] == "n"

    def test_missing_model(self, client):
        err = self.envelope(client.post("/v1/chat/completions", json=CHAT), 400)
        assert err["param"] == "model"

    def test_unknown_model_404(self, client):
        err = self.envelope(client.post("/v1/chat/completions", json={"model": "nope", **CHAT}), 404)
        assert "nope" in err["message"]

    def test_wrong_endpoint_type_400(self, client):
        err = self.envelope(client.post("/v1/embeddings", json={"model": "chat", "input": "x"}), 400)
        assert "llm/v1/chat" in err["message"]

    def test_invalid_json_400(self, client):
        self.envelope(client.post("/v1/chat/completions", data="{", content_type="application/json"), 400)

    @pytest.mark.parametrize("field, value", [
        ("temperature", True), ("temperature", "0.5"), ("max_tokens", 1.5), ("stream", "yes"),
        ("stop", []), ("tool_choice", "sometimes"), ("messages", "hi"),
    ])
    def test_type_errors(self, client, field, value):
        err = self.envelope(client.post("/v1/chat/completions", json={"model": "chat", **CHAT, field: value}), 400)
        assert err["param"] == field


def test_body_over_limit_is_413_on_both_families(make_app):
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    big = {"messages": [{"role": "user", "content": "x" * 2000}]}
    r = client.post("/endpoints/chat/invocations", json=big)
    assert r.status_code == 413 and "larger" in r.json["detail"]
    r = client.post("/v1/chat/completions", json={"model": "chat", **big})
    assert r.status_code == 413 and "larger" in r.json["error"]["message"]


def test_a_body_shorter_than_its_content_length_is_refused(client):
    import io

    body = b'{"messages": [{"role": "user", "content": "hi"}]}'  # valid JSON, but cut short
    for path, key in (("/endpoints/chat/invocations", "detail"), ("/v1/chat/completions", "error")):
        r = client.post(path, input_stream=io.BytesIO(body), content_type="application/json",
                        environ_overrides={"CONTENT_LENGTH": str(len(body) + 50)})
        assert r.status_code in (400, 422) and "shorter than its Content-Length" in str(r.json[key])


def test_unknown_routes_and_methods_are_json(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and "detail" in r.json
    r = client.get("/v1/chat/completions")
    assert r.status_code == 405 and r.json["error"]["type"] == "invalid_request_error"
    assert "POST" in r.headers["Allow"]


def test_tool_messages_validate(client):
    body = {"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ], "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "w"}}}
    assert client.post("/endpoints/chat/invocations", json=body).status_code == 200
    body["messages"][2].pop("tool_call_id")
    r = client.post("/endpoints/chat/invocations", json=body)
    assert r.status_code == 422 and "tool_call_id" in r.json["detail"]


def test_content_parts(client):
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "from parts"}]}]}
    r = client.post("/endpoints/chat/invocations", json=body)
    assert r.json["choices"][0]["message"]["content"] == "from parts"
    r = client.post("/endpoints/chat/invocations", json={"messages": [{"role": "user", "content": [{"text": "x"}]}]})
    assert r.status_code == 422
