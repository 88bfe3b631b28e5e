"""OpenAI and Azure OpenAI: exactly what goes upstream, what comes back, and every error mapping."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers

from app.schemas.chat import ChatChunk, ChatResponse
from tests.upstream_spec import validate_request

DATA = Path(__file__).resolve().parents[1] / "data" / "openai"
OPENAI_CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: gpt-4o-mini, config: {openai_api_key: sk-test-key-123, openai_organization: org-1}}
  - name: completions
    endpoint_type: llm/v1/completions
    model: {provider: openai, name: gpt-3.5-turbo-instruct, config: {openai_api_key: sk-test-key-123}}
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model: {provider: openai, name: text-embedding-3-small, config: {openai_api_key: sk-test-key-123}}
    timeout: {connect: 2, read: 7}
"""
AZURE_CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o
      config:
        openai_api_type: {api_type}
        openai_api_key: azure-secret-key
        openai_api_base: https://myres.openai.azure.com
        openai_deployment_name: my-gpt4o
        openai_api_version: "2024-10-21"
"""
URL = "https://api.openai.com/v1/chat/completions"
CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
        "temperature": 0.2, "max_tokens": 50}


def body_of(call) -> dict:
    return json.loads(call.request.body)


@pytest.fixture
def openai_client(make_app):
    return make_app(OPENAI_CONFIG).test_client()


@responses.activate
def test_chat_request_and_response(openai_client):
    responses.post(URL, body=(DATA / "chat.json").read_text(), content_type="application/json", match=[
        matchers.header_matcher({"Authorization": "Bearer sk-test-key-123", "OpenAI-Organization": "org-1",
                                 "Content-Type": "application/json"}),
    ])
    r = openai_client.post("/endpoints/chat/invocations", json=CHAT)
    assert r.status_code == 200
    assert ChatResponse().validate(r.json) == {}
    assert r.json["choices"][0]["message"]["content"] == "Paris."
    assert r.json["usage"]["total_tokens"] == 21
    sent = body_of(responses.calls[0])
    assert sent == {**CHAT, "model": "gpt-4o-mini"}
    validate_request("openai.openapi.yaml", "/chat/completions", sent)


@responses.activate
def test_extra_parameters_and_tools_pass_through(openai_client):
    responses.post(URL, body=(DATA / "chat.json").read_text(), content_type="application/json")
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "seed": 7,
            "response_format": {"type": "json_object"}, "presence_penalty": 0.5,
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": "required", "stop": ["\n"], "n": 2, "top_p": 0.9}
    assert openai_client.post("/v1/chat/completions", json=body).status_code == 200
    sent = body_of(responses.calls[0])
    assert sent == {**body, "model": "gpt-4o-mini"}
    validate_request("openai.openapi.yaml", "/chat/completions", sent)


@responses.activate
def test_completions_and_embeddings(openai_client):
    responses.post("https://api.openai.com/v1/completions", body=(DATA / "completions.json").read_text(),
                   content_type="application/json")
    responses.post("https://api.openai.com/v1/embeddings", body=(DATA / "embeddings.json").read_text(),
                   content_type="application/json")
    r = openai_client.post("/v1/completions", json={"model": "completions", "prompt": "The sky is", "max_tokens": 5})
    assert r.json["choices"][0]["text"] == " blue."
    sent = body_of(responses.calls[0])
    assert sent == {"model": "gpt-3.5-turbo-instruct", "prompt": "The sky is", "max_tokens": 5}
    validate_request("openai.openapi.yaml", "/completions", sent)
    r = openai_client.post("/endpoints/embeddings/invocations", json={"input": ["a", "b"]})
    assert len(r.json["data"]) == 2 and r.json["usage"]["prompt_tokens"] == 4
    sent = body_of(responses.calls[1])
    assert sent == {"model": "text-embedding-3-small", "input": ["a", "b"]}
    validate_request("openai.openapi.yaml", "/embeddings", sent)


@responses.activate
def test_stream_passes_chunks_through_and_ends_with_done(openai_client):
    responses.post(URL, body=(DATA / "chat_stream.sse").read_bytes(), content_type="text/event-stream")
    r = openai_client.post("/v1/chat/completions", json={
        "model": "chat", **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = [b[6:] for b in r.data.decode().split("\n\n") if b.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(ChatChunk().validate(c) == {} for c in chunks)
    assert chunks[-1]["usage"]["total_tokens"] == 21
    sent = body_of(responses.calls[0])
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    validate_request("openai.openapi.yaml", "/chat/completions", sent)


@responses.activate
def test_mid_stream_error_becomes_error_event(openai_client):
    frames = (DATA / "chat_stream.sse").read_text().split("\n\n")[:2]
    frames.append('data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}')
    responses.post(URL, body="\n\n".join(frames) + "\n\n", content_type="text/event-stream")
    r = openai_client.post("/endpoints/chat/invocations", json={**CHAT, "stream": True})
    assert r.status_code == 200
    last = r.data.decode().strip().split("\n\n")[-1]
    assert "[DONE]" not in r.data.decode()
    err = json.loads(last[6:])["error"]
    assert "failed mid-stream" in err["message"] and "server had an error" in err["message"]


@responses.activate
def test_truncated_stream_is_an_error_not_a_success(openai_client):
    frames = (DATA / "chat_stream.sse").read_text().split("\n\n")[:2]
    responses.post(URL, body="\n\n".join(frames) + "\n\n", content_type="text/event-stream")
    r = openai_client.post("/endpoints/chat/invocations", json={**CHAT, "stream": True})
    assert "data: [DONE]" not in r.data.decode()
    assert "ended without [DONE]" in r.data.decode().strip().split("\n\n")[-1]


@responses.activate
def test_upstream_refusal_before_stream_keeps_its_status(openai_client):
    responses.post(URL, status=401, json={"error": {"message": "Incorrect API key provided: sk-test***-123.",
                                                   "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
    r = openai_client.post("/v1/chat/completions", json={"model": "chat", **CHAT, "stream": True})
    assert r.status_code == 401
    assert r.json["error"]["code"] == "invalid_api_key"
    assert "sk-test" not in r.get_data(as_text=True)


@pytest.mark.parametrize("status, headers, body, expected_status, fragment", [
    (400, {}, {"error": {"message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error",
                         "param": "messages", "code": "context_length_exceeded"}}, 400, "maximum context length"),
    (404, {}, {"error": {"message": "The model `gpt-5x` does not exist", "type": "invalid_request_error", "param": None,
                         "code": "model_not_found"}}, 404, "does not exist"),
    (429, {"retry-after": "2"}, {"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests",
                                           "param": None, "code": "rate_limit_exceeded"}}, 429, "Rate limit reached"),
    (500, {}, {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}, 502, "HTTP 500"),
    (503, {}, {"error": {"message": "The engine is currently overloaded", "type": "server_error", "param": None, "code": None}}, 503, "overloaded"),
    (504, {}, None, 504, "timed out"),
    (502, {}, "<html>Bad gateway</html>", 502, "Bad gateway"),
])
@responses.activate
def test_error_mapping_on_both_families(openai_client, status, headers, body, expected_status, fragment):
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body or ""}
    responses.post(URL, status=status, headers=headers, **kwargs)
    r = openai_client.post("/endpoints/chat/invocations", json=CHAT)
    assert r.status_code == expected_status and fragment in r.json["detail"]
    r = openai_client.post("/v1/chat/completions", json={"model": "chat", **CHAT})
    assert r.status_code == expected_status and fragment in r.json["error"]["message"]
    if status == 429:
        assert r.headers["Retry-After"] == "2"
        assert r.json["error"]["type"] == "rate_limit_exceeded"


@responses.activate
def test_unreadable_success_is_502(openai_client):
    responses.post(URL, status=200, body="<html>oops</html>", content_type="text/html")
    r = openai_client.post("/endpoints/chat/invocations", json=CHAT)
    assert r.status_code == 502 and "not JSON" in r.json["detail"]


@responses.activate
def test_timeout_is_504_and_connection_error_502(openai_client):
    responses.post(URL, body=requests.ReadTimeout("read timed out"))
    r = openai_client.post("/endpoints/chat/invocations", json=CHAT)
    assert r.status_code == 504 and "did not answer in time" in r.json["detail"]
    responses.replace(responses.POST, URL, body=requests.ConnectionError("refused"))
    r = openai_client.post("/v1/chat/completions", json={"model": "chat", **CHAT})
    assert r.status_code == 502 and "Could not reach" in r.json["error"]["message"]


def test_connection_refused_is_502(make_app):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_app(OPENAI_CONFIG.replace(
        "openai_organization: org-1", f"openai_api_base: 'http://127.0.0.1:{port}/v1'")).test_client()
    r = client.post("/endpoints/chat/invocations", json=CHAT)
    assert r.status_code == 502 and "Could not reach the OpenAI provider" in r.json["detail"]


@responses.activate
def test_timeouts_are_passed_on_every_call(openai_client):
    seen = []
    original = requests.adapters.HTTPAdapter.send  # responses' mock, inside activate

    def spy(self, prepared, **kwargs):
        seen.append(kwargs["timeout"])
        return original(self, prepared, **kwargs)

    # Restored here, inside activate: a monkeypatch fixture would restore after responses
    # did, and so leave responses' mock in place for every later test.
    requests.adapters.HTTPAdapter.send = spy
    try:
        responses.post("https://api.openai.com/v1/embeddings", body=(DATA / "embeddings.json").read_text())
        responses.post(URL, body=(DATA / "chat.json").read_text())
        openai_client.post("/endpoints/embeddings/invocations", json={"input": "a"})
        openai_client.post("/endpoints/chat/invocations", json=CHAT)
    finally:
        requests.adapters.HTTPAdapter.send = original
    assert seen == [(2.0, 7.0), (10.0, 300.0)]


class TestAzure:
    DEPLOYMENT = "https://myres.openai.azure.com/openai/deployments/my-gpt4o/chat/completions"

    @responses.activate
    def test_api_key_auth_and_deployment_url(self, make_app):
        client = make_app(AZURE_CONFIG.replace("{api_type}", "azure")).test_client()
        responses.post(self.DEPLOYMENT, body=(DATA / "chat.json").read_text(), match=[
            matchers.query_param_matcher({"api-version": "2024-10-21"}),
            matchers.header_matcher({"api-key": "azure-secret-key"}),
        ])
        r = client.post("/endpoints/chat/invocations", json=CHAT)
        assert r.status_code == 200
        call = responses.calls[0]
        assert "Authorization" not in call.request.headers
        sent = body_of(call)
        assert "model" not in sent  # the deployment picks the model
        validate_request("azure-openai.inference.json", "/deployments/{deployment-id}/chat/completions", sent)

    @responses.activate
    def test_azuread_bearer_token(self, make_app):
        client = make_app(AZURE_CONFIG.replace("{api_type}", "azuread")).test_client()
        responses.post(self.DEPLOYMENT, body=(DATA / "chat.json").read_text(),
                       match=[matchers.header_matcher({"Authorization": "Bearer azure-secret-key"})])
        assert client.post("/endpoints/chat/invocations", json=CHAT).status_code == 200
        assert "api-key" not in responses.calls[0].request.headers

    @responses.activate
    def test_stream_with_prompt_filter_chunk(self, make_app):
        client = make_app(AZURE_CONFIG.replace("{api_type}", "azure")).test_client()
        responses.post(self.DEPLOYMENT, body=(DATA / "azure_chat_stream.sse").read_bytes(), content_type="text/event-stream")
        r = client.post("/v1/chat/completions", json={"model": "chat", **CHAT, "stream": True})
        events = [b[6:] for b in r.data.decode().split("\n\n") if b.startswith("data: ")]
        assert events[-1] == "[DONE]"
        text = "".join(c["delta"].get("content", "") for e in events[:-1] for c in json.loads(e)["choices"])
        assert text == "Hi"

    @responses.activate
    def test_content_filter_400(self, make_app):
        client = make_app(AZURE_CONFIG.replace("{api_type}", "azure")).test_client()
        responses.post(self.DEPLOYMENT, status=400, body=(DATA / "azure_content_filter.json").read_text())
        r = client.post("/v1/chat/completions", json={"model": "chat", **CHAT})
        assert r.status_code == 400
        assert r.json["error"]["code"] == "content_filter" and r.json["error"]["param"] == "prompt"
        assert "azure-secret-key" not in r.get_data(as_text=True)


def test_proxy_environment_is_honoured(monkeypatch):
    from app.http import make_session

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert make_session("https://api.openai.com/v1").proxies["https"] == "http://proxy.internal:3128"
    assert "https" not in make_session("http://127.0.0.1:8000/v1").proxies
