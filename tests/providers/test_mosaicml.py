"""MosaicML provider: Llama-2 prompt template, predict bodies, replies, errors."""
from __future__ import annotations

import pytest
import responses

from app import config as config_mod
from app.errors import ConfigError, InvalidRequest, UpstreamError
from app.providers import mosaicml
from app.providers.base import EMBEDDINGS
from tests.providers.util import build, data, example_endpoints, gateway_reply, sent

BASE = "https://models.hosted-on.mosaicml.hosting"
KEY = "mosaic-raw-key-555"
YAML = f"""
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {{provider: mosaicml, name: llama2-70b-chat, config: {{mosaicml_api_key: "{KEY}"}}}}
  - name: text
    endpoint_type: llm/v1/completions
    model: {{provider: mosaicml, name: mpt-7b-instruct, config: {{mosaicml_api_key: "{KEY}"}}}}
  - name: embed
    endpoint_type: llm/v1/embeddings
    model: {{provider: mosaicml, name: instructor-xl, config: {{mosaicml_api_key: "{KEY}", mosaicml_api_base: "http://mosaic.test"}}}}
"""


def msg(role, content):
    return {"role": role, "content": content}


@pytest.mark.parametrize("messages, prompt", [
    ([msg("user", "Hi")], "<s>[INST] Hi [/INST]"),
    ([msg("system", "Be brief."), msg("user", "Hi")], "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"),
    ([msg("developer", "A"), msg("system", "B"), msg("user", "Hi")],
     "<s>[INST] <<SYS>>\nA\nB\n<</SYS>>\n\nHi [/INST]"),
    ([msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "Capital of France?")],
     "<s>[INST] Hi [/INST] Hello! </s><s>[INST] Capital of France? [/INST]"),
    ([msg("user", [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}])], "<s>[INST] Hi there [/INST]"),
])
def test_llama2_prompt(messages, prompt):
    assert mosaicml.llama2_prompt(messages) == prompt


@pytest.mark.parametrize("messages, param", [
    ([msg("assistant", "x")], "messages[0].role"),
    ([msg("user", "a"), msg("user", "b")], "messages[1].role"),
    ([msg("user", "a"), msg("assistant", "b")], "messages"),
    ([msg("user", "a"), msg("system", "b"), msg("assistant", "c"), msg("user", "d")], "messages[1].role"),
    ([msg("user", "a"), {"role": "tool", "tool_call_id": "1", "content": "x"}], "messages[1]"),
    ([msg("user", [{"type": "image_url", "image_url": {"url": "http://x"}}])], "messages[0].content"),
])
def test_llama2_prompt_rejects(messages, param):
    with pytest.raises(InvalidRequest) as info:
        mosaicml.llama2_prompt(messages)
    assert info.value.param == param


@pytest.mark.parametrize("request_, params", [
    ({}, {}),
    ({"temperature": 0.2, "max_tokens": 128, "top_p": 0.9, "top_k": 40},
     {"temperature": 0.2, "max_new_tokens": 128, "top_p": 0.9, "top_k": 40}),
    ({"max_completion_tokens": 16, "n": 1}, {"max_new_tokens": 16}),
])
def test_parameters(request_, params):
    assert mosaicml.completions_to_upstream({"prompt": "p", **request_}) == (
        {"inputs": ["p"], "parameters": params} if params else {"inputs": ["p"]})


@pytest.mark.parametrize("request_, param", [
    ({"n": 2}, "n"), ({"stop": "x"}, "stop"), ({"stream": True}, "stream"), ({"top_k": 0}, "top_k"),
    ({"presence_penalty": 1}, "presence_penalty"), ({"tools": []}, "tools"),
])
def test_rejected_parameters(request_, param):
    with pytest.raises(InvalidRequest) as info:
        mosaicml.chat_to_upstream({"messages": [msg("user", "x")], **request_})
    assert info.value.param == param and "MosaicML" in info.value.message


@pytest.mark.parametrize("body, count", [
    ({"outputs": ["a"]}, 2), ({"outputs": [1]}, 1), ({"result": ["a"]}, 1), (["a"], 1),
])
def test_bad_text_replies(body, count):
    with pytest.raises(UpstreamError):
        mosaicml.texts_from_upstream(body, count)


@responses.activate
def test_chat_exact_request(make_app):
    responses.post(f"{BASE}/llama2-70b-chat/v1/predict", body=data("mosaicml/predict_text.json"),
                   content_type="application/json")
    resp = make_app(YAML).test_client().post("/gateway/chat/invocations", json={
        "messages": [msg("system", "Be brief."), msg("user", "Capital of France?")],
        "temperature": 0.2, "max_tokens": 64})
    assert resp.status_code == 200, resp.json
    call, body = sent()
    assert call.request.url == f"{BASE}/llama2-70b-chat/v1/predict"
    assert call.request.headers["Authorization"] == KEY  # raw key, no Bearer
    assert body == {"inputs": ["<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nCapital of France? [/INST]"],
                    "parameters": {"temperature": 0.2, "max_new_tokens": 64}}
    assert resp.json["choices"] == [{"index": 0, "message": {
        "role": "assistant", "content": " Paris is the capital of France."}, "finish_reason": None}]
    assert resp.json["usage"] is None and resp.json["object"] == "chat.completion"


@responses.activate
def test_completions_several_prompts(make_app):
    responses.post(f"{BASE}/mpt-7b-instruct/v1/predict", body=data("mosaicml/predict_texts.json"),
                   content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/completions", json={
        "model": "text", "prompt": ["France?", "Germany?"], "top_k": 5})
    assert resp.status_code == 200, resp.json
    _, body = sent()
    assert body == {"inputs": ["France?", "Germany?"], "parameters": {"top_k": 5}}
    assert [(c["index"], c["text"], c["finish_reason"]) for c in resp.json["choices"]] == [
        (0, " Paris.", None), (1, " Berlin.", None)]


@responses.activate
def test_embeddings(make_app):
    responses.post("http://mosaic.test/instructor-xl/v1/predict", body=data("mosaicml/predict_embeddings.json"),
                   content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/embeddings", json={"model": "embed", "input": ["a", "b"]})
    assert resp.status_code == 200, resp.json
    _, body = sent()
    assert body == {"inputs": ["a", "b"]}
    assert [d["embedding"] for d in resp.json["data"]] == [[0.0123, -0.0456, 0.0789], [0.0321, 0.0654, -0.0987]]
    assert resp.json["usage"] is None


@responses.activate
def test_embeddings_count_mismatch_is_502():
    responses.post(f"{BASE}/instructor-xl/v1/predict", json={"outputs": [[0.1]]})
    provider = build(mosaicml.MosaicMLProvider, "instructor-xl", {"mosaicml_api_key": KEY}, EMBEDDINGS)
    with pytest.raises(UpstreamError) as info:
        provider.embeddings({"input": ["a", "b"]})
    assert info.value.status == 502


@pytest.mark.parametrize("status, body, expected, fragment", [
    (500, data("mosaicml/error_token_limit.json"), 400, "max output tokens is limited to 4096"),
    (500, b'{"message":"Internal error"}', 502, "Internal error"),
    (401, b'{"message":"Invalid API key"}', 401, "Invalid API key"),
    (429, b'{"message":"Rate limit exceeded"}', 429, "Rate limit"),
])
@responses.activate
def test_errors(make_app, status, body, expected, fragment):
    resp = gateway_reply(make_app, YAML, "/v1/chat/completions", {"model": "chat", "messages": [msg("user", "x")]},
                         url=f"{BASE}/llama2-70b-chat/v1/predict", status=status, body=body)
    assert resp.status_code == expected
    assert fragment in resp.json["error"]["message"] and KEY not in resp.get_data(as_text=True)


def test_stream_rejected_with_4xx(make_app):
    client = make_app(YAML).test_client()
    resp = client.post("/v1/chat/completions", json={"model": "chat", "messages": [msg("user", "x")], "stream": True})
    assert resp.status_code == 400 and resp.json["error"]["param"] == "stream"
    resp = client.post("/endpoints/text/invocations", json={"prompt": "x", "stream": True})
    assert resp.status_code == 422 and "stream" in resp.json["detail"]


def test_config_requires_key():
    with pytest.raises(ConfigError, match="mosaicml_api_key"):
        config_mod.parse("""
endpoints:
  - name: e
    endpoint_type: llm/v1/chat
    model: {provider: mosaicml, name: llama2-70b-chat, config: {}}
""")


def test_example_config_loads(monkeypatch):
    endpoints = example_endpoints("mosaicml.yaml", monkeypatch, MOSAICML_API_KEY="example-key")
    assert endpoints and {e.provider for e in endpoints} == {"mosaicml"}
