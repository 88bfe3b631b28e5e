"""TGI provider: parameter translation, /generate and /generate_stream, the chat API, errors."""
from __future__ import annotations

import json

import pytest
import responses

from app import config as config_mod
from app.errors import ConfigError, InvalidRequest, UpstreamError
from app.providers import huggingface_tgi as tgi
from app.providers.base import COMPLETIONS
from tests.providers.util import build, data, data_json, example_endpoints, sent, sse_events
from tests.upstream_spec import validate_request

SPEC = "tgi.openapi.json"
HOST = "http://tgi.test:8080"
KEY = "hf_secret_key_123"
BASE = {"details": True, "decoder_input_details": True}

YAML = f"""
endpoints:
  - name: tgi-chat
    endpoint_type: llm/v1/chat
    model: {{provider: huggingface-text-generation-inference, name: mistral-7b, config: {{hf_server_url: "{HOST}"}}}}
  - name: tgi-completions
    endpoint_type: llm/v1/completions
    model:
      provider: huggingface-text-generation-inference
      name: mistral-7b
      config: {{hf_server_url: "{HOST}", hf_api_key: "{KEY}"}}
"""


@pytest.mark.parametrize("request_, params", [
    ({}, BASE),
    ({"temperature": 0}, {**BASE, "do_sample": False}),
    ({"temperature": 0.7}, {**BASE, "temperature": 0.7, "do_sample": True}),
    ({"top_p": 1.0}, BASE),
    ({"top_p": 0.9}, {**BASE, "top_p": 0.9, "do_sample": True}),
    ({"top_k": 40}, {**BASE, "top_k": 40, "do_sample": True}),
    ({"max_tokens": 20}, {**BASE, "max_new_tokens": 20}),
    ({"max_completion_tokens": 30, "max_tokens": 20}, {**BASE, "max_new_tokens": 30}),
    ({"stop": "\n"}, {**BASE, "stop": ["\n"]}),
    ({"stop": ["a", "b"], "seed": 7}, {**BASE, "stop": ["a", "b"], "seed": 7}),
    ({"n": 1, "repetition_penalty": 1.1}, {**BASE, "repetition_penalty": 1.1}),
])
def test_generate_parameters(request_, params):
    got = tgi.generate_parameters({"prompt": "x", **request_}, stream=False)
    assert got == params
    validate_request(SPEC, "/generate", {"inputs": "x", "parameters": got})


def test_streaming_parameters_leave_out_decoder_input_details():
    assert tgi.generate_parameters({"prompt": "x"}, stream=True) == {"details": True}


@pytest.mark.parametrize("request_, param", [
    ({"n": 2}, "n"),
    ({"top_p": 0}, "top_p"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"logprobs": 2}, "logprobs"),
    ({"echo": True}, "echo"),
    ({"suffix": "!"}, "suffix"),
    ({"best_of": 2}, "best_of"),
    ({"temperature": 0, "top_p": 0.5}, "temperature"),
    ({"top_k": 0}, "top_k"),
    ({"seed": 0}, "seed"),
])
def test_generate_parameters_reject(request_, param):
    with pytest.raises(InvalidRequest) as info:
        tgi.generate_parameters({"prompt": "x", **request_}, stream=False)
    assert info.value.param == param
    assert param in info.value.message and "Hugging Face TGI" in info.value.message


@pytest.mark.parametrize("request_, expected", [
    ({"temperature": 0}, {"temperature": 0}),
    ({"stop": "END", "n": 1}, {"stop": ["END"]}),
    ({"top_p": 1.0, "max_completion_tokens": 9}, {"max_tokens": 9}),
    ({"top_p": 0.5, "seed": 3}, {"top_p": 0.5, "seed": 3}),
    ({"response_format": {"type": "regex", "value": "[A-Z][a-z]+"}},
     {"response_format": {"type": "regex", "value": "[A-Z][a-z]+"}}),
    ({"stream": True, "stream_options": {"include_usage": True}},
     {"stream": True, "stream_options": {"include_usage": True}}),
])
def test_chat_to_upstream(request_, expected):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]
    body = tgi.chat_to_upstream({"messages": messages, **request_}, "tgi")
    assert body == {"model": "tgi", "messages": messages, **expected}
    validate_request(SPEC, "/v1/chat/completions", body)


@pytest.mark.parametrize("request_, param", [
    ({"n": 3}, "n"), ({"logit_bias": {"50256": -100}}, "logit_bias"), ({"user": "u1"}, "user"),
    ({"top_p": 0}, "top_p"), ({"response_format": {"type": "json_object"}}, "response_format"),
])
def test_chat_to_upstream_rejects(request_, param):
    with pytest.raises(InvalidRequest) as info:
        tgi.chat_to_upstream({"messages": [{"role": "user", "content": "hi"}], **request_}, "tgi")
    assert info.value.param == param


@pytest.mark.parametrize("event, expected", [
    ({"index": 1, "token": {"id": 5, "text": " Paris", "special": False}, "generated_text": None, "details": None},
     (" Paris", None, None)),
    ({"index": 3, "token": {"id": 2, "text": "</s>", "special": True}, "generated_text": " Paris.",
      "details": {"finish_reason": "eos_token", "generated_tokens": 3, "input_length": 12, "seed": None}},
     ("", "stop", {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})),
    ({"index": 9, "token": {"id": 7, "text": "!", "special": False}, "generated_text": "x!",
      "details": {"finish_reason": "length", "generated_tokens": 9, "input_length": 2, "seed": 1}},
     ("!", "length", {"prompt_tokens": 2, "completion_tokens": 9, "total_tokens": 11})),
    ({"index": 4, "token": {"id": 8, "text": "###", "special": False}, "generated_text": "a###",
      "details": {"finish_reason": "stop_sequence", "generated_tokens": 4, "input_length": 2, "seed": None}},
     ("###", "stop", {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6})),
])
def test_stream_event(event, expected):
    assert tgi.stream_event(event) == expected


@pytest.mark.parametrize("finish, expected", [("stop_sequence", "stop"), ("length", "length"), ("stop", "stop")])
def test_chat_finish_reasons(finish, expected):
    body = data_json("tgi/chat.json")
    body["choices"][0]["finish_reason"] = finish
    assert tgi.chat_from_upstream(body)["choices"][0]["finish_reason"] == expected


def completions_provider(**config):
    return build(tgi.HuggingFaceTGIProvider, "mistral-7b", {"hf_server_url": HOST, **config}, COMPLETIONS)


@responses.activate
def test_generate_exact_request_and_usage():
    responses.post(f"{HOST}/generate", body=data("tgi/generate.json"), content_type="application/json")
    out = completions_provider(hf_api_key=KEY).completions(
        {"prompt": "[INST] Capital of France? [/INST]", "max_tokens": 20, "temperature": 0.2, "stop": "</s>"}
    )
    call, body = sent()
    assert call.request.url == f"{HOST}/generate"
    assert call.request.headers["Authorization"] == f"Bearer {KEY}"
    assert call.request.headers["Content-Type"] == "application/json"
    assert body == {"inputs": "[INST] Capital of France? [/INST]", "parameters": {
        **BASE, "temperature": 0.2, "do_sample": True, "max_new_tokens": 20, "stop": ["</s>"]}}
    validate_request(SPEC, "/generate", body)
    assert out["object"] == "text_completion" and out["model"] == "mistral-7b"
    assert out["choices"] == [{"index": 0, "text": " Paris.", "finish_reason": "stop"}]
    assert out["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


@responses.activate
def test_generate_without_key_sends_no_authorization_and_fans_out_prompts():
    responses.post(f"{HOST}/generate", body=data("tgi/generate.json"), content_type="application/json")
    out = completions_provider().completions({"prompt": ["a", "b"]})
    assert len(responses.calls) == 2
    assert [json.loads(c.request.body)["inputs"] for c in responses.calls] == ["a", "b"]
    assert all("Authorization" not in c.request.headers for c in responses.calls)
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert out["usage"] == {"prompt_tokens": 8, "completion_tokens": 6, "total_tokens": 14}


@responses.activate
def test_generate_stream_chunks_and_usage():
    responses.post(f"{HOST}/generate_stream", body=data("tgi/generate_stream.sse"),
                   content_type="text/event-stream")
    chunks = list(completions_provider().completions_stream(
        {"prompt": "Capital?", "stream": True, "stream_options": {"include_usage": True}}))
    _, body = sent()
    assert body == {"inputs": "Capital?", "parameters": {"details": True}}
    validate_request(SPEC, "/generate_stream", body)
    assert [c["choices"][0]["text"] for c in chunks[:2]] == [" Paris", "."]
    assert chunks[2]["choices"][0] == {"index": 0, "text": "", "finish_reason": "stop"}
    assert chunks[3]["choices"] == [] and chunks[3]["usage"] == {
        "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert len(chunks) == 4


@pytest.mark.parametrize("name, message", [
    ("tgi/generate_stream_error.sse", "CUDA out of memory"),
    ("tgi/generate_stream_truncated.sse", "ended before its final event"),
])
@responses.activate
def test_generate_stream_failures(name, message):
    responses.post(f"{HOST}/generate_stream", body=data(name), content_type="text/event-stream")
    stream = completions_provider().completions_stream({"prompt": "x", "stream": True})
    assert next(stream)["choices"][0]["text"] == " Paris"
    with pytest.raises(UpstreamError) as info:
        list(stream)
    assert message in info.value.message and info.value.status == 502


def test_stream_rejects_several_prompts():
    with pytest.raises(InvalidRequest) as info:
        completions_provider().completions_stream({"prompt": ["a", "b"], "stream": True})
    assert info.value.param == "prompt"


@responses.activate
def test_chat_through_flask(make_app):
    responses.post(f"{HOST}/v1/chat/completions", body=data("tgi/chat.json"), content_type="application/json")
    client = make_app(YAML).test_client()
    resp = client.post("/v1/chat/completions", json={
        "model": "tgi-chat", "messages": [{"role": "user", "content": "Capital of France?"}],
        "temperature": 0, "top_p": 1, "stop": "."})
    assert resp.status_code == 200, resp.json
    call, body = sent()
    assert call.request.url == f"{HOST}/v1/chat/completions"
    assert "Authorization" not in call.request.headers
    assert body == {"model": "mistral-7b", "messages": [{"role": "user", "content": "Capital of France?"}],
                    "temperature": 0.0, "stop": ["."]}
    validate_request(SPEC, "/v1/chat/completions", body)
    assert resp.json["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "Paris"},
                                       "logprobs": None, "finish_reason": "stop"}
    assert resp.json["usage"]["total_tokens"] == 17


@responses.activate
def test_chat_tools_pass_through(make_app):
    responses.post(f"{HOST}/v1/chat/completions", body=data("tgi/chat_tools.json"), content_type="application/json")
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    resp = make_app(YAML).test_client().post("/gateway/tgi-chat/invocations", json={
        "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": tools, "tool_choice": "required"})
    assert resp.status_code == 200, resp.json
    _, body = sent()
    assert body["tools"] == [{"type": "function", "function": {"name": "get_weather", "arguments": tools[0]["function"]["parameters"]}}]
    assert body["tool_choice"] == "required"
    validate_request(SPEC, "/v1/chat/completions", body)
    call = resp.json["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"description": None, "name": "get_weather", "arguments": '{"city":"Paris"}'}


@responses.activate
def test_chat_stream_through_flask(make_app):
    responses.post(f"{HOST}/v1/chat/completions", body=data("tgi/chat_stream.sse"),
                   content_type="text/event-stream")
    resp = make_app(YAML).test_client().post("/v1/chat/completions", json={
        "model": "tgi-chat", "messages": [{"role": "user", "content": "Capital?"}], "stream": True})
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    events = sse_events(resp.data)
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == "Paris"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    _, body = sent()
    assert body["stream"] is True
    validate_request(SPEC, "/v1/chat/completions", body)


@pytest.mark.parametrize("status, file, expected_status, fragment", [
    (422, "tgi/error_422.json", 422, "must be <= 4096"),
    (429, "tgi/error_429.json", 429, "overloaded"),
    (424, "tgi/error_424.json", 502, "CUDA out of memory"),
    (401, None, 401, "HTTP 401"),
])
@responses.activate
def test_errors_through_flask(make_app, status, file, expected_status, fragment):
    responses.post(f"{HOST}/generate", status=status, body=data(file) if file else b"",
                   content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/completions", json={"model": "tgi-completions", "prompt": "x"})
    assert resp.status_code == expected_status
    assert fragment in resp.json["error"]["message"]
    assert KEY not in resp.get_data(as_text=True)


@responses.activate
def test_stream_refusal_keeps_status(make_app):
    responses.post(f"{HOST}/generate_stream", status=429, body=data("tgi/error_429.json"),
                   content_type="application/json")
    resp = make_app(YAML).test_client().post(
        "/v1/completions", json={"model": "tgi-completions", "prompt": "x", "stream": True})
    assert resp.status_code == 429


def test_invalid_parameter_is_a_clear_4xx(make_app):
    client = make_app(YAML).test_client()
    resp = client.post("/v1/completions", json={"model": "tgi-completions", "prompt": "x", "n": 2})
    assert resp.status_code == 400 and resp.json["error"]["param"] == "n"
    resp = client.post("/endpoints/tgi-completions/invocations", json={"prompt": "x", "presence_penalty": 1})
    assert resp.status_code == 422 and "presence_penalty" in resp.json["detail"]


@pytest.mark.parametrize("config, fragment", [
    ("{}", "hf_server_url"),
    ('{hf_server_url: "not a url"}', "hf_server_url"),
])
def test_config_errors(config, fragment):
    text = f"""
endpoints:
  - name: e
    endpoint_type: llm/v1/chat
    model: {{provider: huggingface-text-generation-inference, name: m, config: {config}}}
"""
    with pytest.raises(ConfigError) as info:
        config_mod.parse(text)
    assert fragment in str(info.value)


def test_embeddings_endpoint_rejected_at_load():
    text = f"""
endpoints:
  - name: e
    endpoint_type: llm/v1/embeddings
    model: {{provider: huggingface-text-generation-inference, name: m, config: {{hf_server_url: "{HOST}"}}}}
"""
    with pytest.raises(ConfigError, match="does not support llm/v1/embeddings"):
        config_mod.parse(text)


# ----- live: the native SSE stream through real gunicorn + gevent ---------------------------


def _events(name: str) -> list[bytes]:
    """The canned stream split into its SSE events, each sent as its own HTTP chunk."""
    return [block + b"\n\n" for block in data(name).split(b"\n\n") if block.strip()]


@pytest.mark.parametrize("name, final", [
    ("tgi/generate_stream.sse", "[DONE]"),
    ("tgi/generate_stream_error.sse", "error"),
])
def test_live_generate_stream_through_gunicorn(write_config, name, final):
    import time

    import requests as http

    from tests.live import FakeUpstream, Gunicorn, Reply

    def handler(seen):
        if seen.path != "/generate_stream":
            return Reply(404, {"error": "not found", "error_type": "not_found"})
        return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=_events(name), chunk_interval=0.05)

    with FakeUpstream(handler) as fake:
        path = write_config(f"""
endpoints:
  - name: tgi
    endpoint_type: llm/v1/completions
    model: {{provider: huggingface-text-generation-inference, name: m, config: {{hf_server_url: "{fake.url}"}}}}
""")
        with Gunicorn(path, workers=1) as gw:
            started = time.monotonic()
            arrivals, lines = [], []
            with http.post(f"{gw.url}/v1/completions", stream=True, timeout=30, json={
                    "model": "tgi", "prompt": "Capital?", "stream": True,
                    "stream_options": {"include_usage": True}}) as resp:
                assert resp.status_code == 200
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                for line in resp.iter_lines():
                    if line.startswith(b"data: "):
                        lines.append(line[6:].decode())
                        arrivals.append(time.monotonic() - started)
        body = fake.requests[0].json()
        validate_request(SPEC, "/generate_stream", body)
        assert body == {"inputs": "Capital?", "parameters": {"details": True}}
    first = json.loads(lines[0])
    assert first["choices"][0]["text"] == " Paris"
    if final == "[DONE]":
        assert lines[-1] == "[DONE]"
        assert "".join(json.loads(x)["choices"][0]["text"] for x in lines[:3]) == " Paris."
        assert json.loads(lines[-2])["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        # Chunks are relayed as they come, not buffered until the upstream finishes.
        assert arrivals[-1] - arrivals[0] >= 0.08
    else:
        last = json.loads(lines[-1])
        assert "CUDA out of memory" in last["error"]["message"]
        assert "[DONE]" not in lines


def test_example_config_loads(monkeypatch):
    endpoints = example_endpoints("huggingface-text-generation-inference.yaml", monkeypatch, HF_TOKEN="example-key")
    assert endpoints and {e.provider for e in endpoints} == {"huggingface-text-generation-inference"}


@pytest.mark.parametrize("path, reply", [
    ("generate", b'["not", "an", "object"]'),
    ("generate", b'{"details": {"finish_reason": "length"}}'),
])
@responses.activate
def test_malformed_generate_reply_is_502(path, reply):
    responses.post(f"{HOST}/{path}", body=reply, content_type="application/json")
    with pytest.raises(UpstreamError) as info:
        completions_provider().completions({"prompt": "x"})
    assert info.value.status == 502


@responses.activate
def test_malformed_chat_reply_is_502(make_app):
    responses.post(f"{HOST}/v1/chat/completions", body=b'[{"generated_text": "x"}]', content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/chat/completions", json={
        "model": "tgi-chat", "messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 502 and "without choices" in resp.json["error"]["message"]


def test_tool_round_trip_messages_pass_through():
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "0", "content": "sunny"},
    ]
    body = tgi.chat_to_upstream({"messages": messages}, "m")
    assert body["messages"] == messages
    validate_request(SPEC, "/v1/chat/completions", body)
