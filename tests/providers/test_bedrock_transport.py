"""Bedrock over real HTTP against the local fake: SigV4 headers, eventstream framing, errors, timeouts."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.eventstream import EventStreamBuffer

from app.errors import GatewayError, UpstreamError
from app.http import Timeout
from app.providers.base import CHAT, COMPLETIONS
from app.providers.bedrock import BedrockConfig, BedrockProvider
from tests.fakes import eventstream as es
from tests.fakes.bedrock_runtime import AUTH, BedrockRuntimeFake, error, stream_reply
from tests.live import Reply, free_port

DATA = Path(__file__).resolve().parents[1] / "data" / "bedrock"
AKID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
CHAT_REQUEST = {"messages": [{"role": "user", "content": "hello there"}]}


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def make(url: str, model: str = CLAUDE, endpoint_type: str = CHAT, timeout: Timeout = Timeout(), **aws: Any) -> BedrockProvider:
    config = BedrockConfig().load({"aws_config": {
        "aws_region": "eu-central-1", "endpoint_url": url, "aws_access_key_id": AKID,
        "aws_secret_access_key": SECRET, **aws}})
    return BedrockProvider(model, config, session=None, timeout=timeout, endpoint_type=endpoint_type)


# ----- the eventstream encoder the fake uses ------------------------------------------------------


def test_encoder_matches_the_worked_example_and_botocore_decodes_it() -> None:
    headers = {":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"}
    example = es.frame(headers, b"x" * 133)  # WIRE-FORMATS 1.4: 133-byte payload, 224-byte frame
    assert len(example) == 224 and example[:12].hex() == "000000e00000004bacf880ae"
    payload = {"bytes": base64.b64encode(b'{"generation":"Hi"}').decode()}
    frame = es.event("chunk", payload)
    buffer = EventStreamBuffer()
    buffer.add_data(frame + es.exception("throttlingException", "slow down"))
    first, second = list(buffer)
    assert first.headers == {":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"}
    assert json.loads(first.payload) == payload
    assert second.headers[":exception-type"] == "throttlingException"
    assert json.loads(second.payload) == {"message": "slow down"}


def test_a_corrupted_frame_fails_botocores_crc_check() -> None:
    frame = bytearray(es.chunk({"generation": "x"}))
    frame[-5] ^= 0xFF
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(frame))
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        list(buffer)


# ----- SigV4 ---------------------------------------------------------------------------------------


def test_requests_are_sigv4_signed_for_bedrock() -> None:
    with BedrockRuntimeFake(keys={AKID: SECRET}) as fake:  # the fake verifies the signature too
        make(fake.url).chat(CHAT_REQUEST)
        make(fake.url, "us.meta.llama3-1-8b-instruct-v1:0", COMPLETIONS).completions({"prompt": "a b"})
        call = fake.calls[0]
        assert len(fake.calls) == 2 and fake.refused == []
    match = AUTH.match(call.headers["Authorization"])
    assert match and match["akid"] == AKID and match["region"] == "eu-central-1" and match["service"] == "bedrock"
    assert {"host", "x-amz-date"} <= set(match["signed"].split(";"))
    assert call.op == "converse" and call.model == CLAUDE
    assert SECRET not in json.dumps(call.headers)


def test_wrong_secret_is_refused_and_reported_without_it() -> None:
    with BedrockRuntimeFake(keys={AKID: "the-real-secret"}) as fake:
        with pytest.raises(GatewayError) as info:
            make(fake.url).chat(CHAT_REQUEST)
        assert fake.refused == ["InvalidSignatureException"] and fake.calls == []
    assert info.value.status == 502 and "InvalidSignatureException" in info.value.message
    assert SECRET not in info.value.message


def test_fake_refuses_unsigned_or_malformed_auth() -> None:
    with BedrockRuntimeFake() as fake:
        url = f"{fake.url}/model/{CLAUDE}/converse"
        resp = requests.post(url, json={"messages": []}, timeout=5)
        assert resp.status_code == 403 and resp.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationToken")
        bad = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock-runtime/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
        resp = requests.post(url, json={}, headers={"Authorization": bad, "X-Amz-Date": "20260101T000000Z"}, timeout=5)
        assert resp.status_code == 403
        assert fake.calls == []


# ----- streams through real framing ------------------------------------------------------------------


def test_converse_stream_with_tool_call() -> None:
    case = load("converse_stream_tool.json")
    frames = [es.event(name, body) for event in case["events"] for name, body in event.items()]
    with BedrockRuntimeFake(lambda call: stream_reply(frames)) as fake:
        chunks = list(make(fake.url).chat_stream({**CHAT_REQUEST, "stream": True, "stream_options": {"include_usage": True}}))
        assert fake.calls[0].op == "converse-stream"
    assert [[c["choices"][0]["delta"], c["choices"][0]["finish_reason"]] for c in chunks[:-1]] == case["deltas"]
    assert chunks[-1]["usage"] == case["usage"]


@pytest.mark.parametrize("name", [p.stem.removeprefix("invoke_") for p in sorted(DATA.glob("invoke_*.json"))
                                  if "chunks" in json.loads(p.read_text())])
def test_invoke_stream_per_family(name: str) -> None:
    case = load(f"invoke_{name}.json")
    with BedrockRuntimeFake(lambda call: stream_reply([es.chunk(c) for c in case["chunks"]])) as fake:
        provider = make(fake.url, case["model"], COMPLETIONS)
        request = {**case["request"], "stream": True, "stream_options": {"include_usage": True}}
        chunks = list(provider.completions_stream(request))
        sent = fake.calls[0]
    assert sent.op == "invoke-with-response-stream" and sent.model == case["model"]
    assert sent.body == {**case["body"], **case.get("stream_body", {})}
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"] and c["choices"][0]["text"]]
    assert texts == case["expected_stream"]["text"]
    assert chunks[-2]["choices"][0]["finish_reason"] == case["expected_stream"]["finish_reason"]
    prompt, completion = case["expected_stream"]["usage"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == prompt
    assert chunks[-1]["usage"]["completion_tokens"] == completion


@pytest.mark.parametrize("exception, status", [
    ("throttlingException", 429), ("validationException", 400), ("modelStreamErrorException", 502),
    ("serviceUnavailableException", 503), ("internalServerException", 502),
])  # ConverseStreamOutput's modeled exceptions (bedrock-runtime service-2.json)
def test_exception_frame_mid_stream_raises_a_gateway_error(exception: str, status: int) -> None:
    frames = [es.event("messageStart", {"role": "assistant"}),
              es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hal"}}),
              es.exception(exception, f"trouble near {AKID}")]
    with BedrockRuntimeFake(lambda call: stream_reply(frames)) as fake:
        stream = make(fake.url).chat_stream({**CHAT_REQUEST, "stream": True})
        assert next(stream)["choices"][0]["delta"]["role"] == "assistant"
        assert next(stream)["choices"][0]["delta"]["content"] == "Hal"
        with pytest.raises(GatewayError) as info:
            next(stream)
    assert info.value.status == status and AKID not in info.value.message


@pytest.mark.parametrize("exception, status", [("throttlingException", 429), ("modelTimeoutException", 504)])
def test_invoke_stream_exception_frame(exception: str, status: int) -> None:
    frames = [es.chunk({"generation": "Hi", "stop_reason": None}), es.exception(exception, "Too many requests")]
    with BedrockRuntimeFake(lambda call: stream_reply(frames)) as fake:
        stream = make(fake.url, "meta.llama3-8b-instruct-v1:0", COMPLETIONS).completions_stream({"prompt": "x", "stream": True})
        assert next(stream)["choices"][0]["text"] == "Hi"
        with pytest.raises(GatewayError) as info:
            next(stream)
    assert info.value.status == status


@pytest.mark.parametrize("model, endpoint_type, frames", [
    (CLAUDE, CHAT, [es.event("messageStart", {"role": "assistant"}),
                    es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "cut"}})]),
    ("meta.llama3-8b-instruct-v1:0", COMPLETIONS, [es.chunk({"generation": "cut", "stop_reason": None})]),
])
def test_stream_without_terminal_event_is_an_error(model: str, endpoint_type: str, frames: list[bytes]) -> None:
    with BedrockRuntimeFake(lambda call: stream_reply(frames)) as fake:
        provider = make(fake.url, model, endpoint_type)
        stream = provider.chat_stream({**CHAT_REQUEST, "stream": True}) if endpoint_type == CHAT else \
            provider.completions_stream({"prompt": "x", "stream": True})
        with pytest.raises(UpstreamError, match="ended before"):
            list(stream)


def test_corrupt_frame_mid_stream_is_a_502() -> None:
    bad = bytearray(es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}))
    bad[-1] ^= 0xFF
    with BedrockRuntimeFake(lambda call: stream_reply([es.event("messageStart", {"role": "assistant"}), bytes(bad)])) as fake:
        with pytest.raises(UpstreamError) as info:
            list(make(fake.url).chat_stream({**CHAT_REQUEST, "stream": True}))
    assert info.value.status == 502


# ----- HTTP errors, timeouts, unreachable ------------------------------------------------------------


@pytest.mark.parametrize("http, code, status", [
    (400, "ValidationException", 400), (403, "AccessDeniedException", 403), (404, "ResourceNotFoundException", 404),
    (408, "ModelTimeoutException", 504), (429, "ThrottlingException", 429), (429, "ModelNotReadyException", 503),
    (503, "ServiceUnavailableException", 503), (424, "ModelErrorException", 502), (500, "InternalServerException", 502),
])
def test_http_errors_map(http: int, code: str, status: int) -> None:
    with BedrockRuntimeFake(lambda call: error(http, code, "nope")) as fake:
        for call in (lambda p: p.chat(CHAT_REQUEST), lambda p: next(p.chat_stream({**CHAT_REQUEST, "stream": True}))):
            with pytest.raises(GatewayError) as info:
                call(make(fake.url))
            assert info.value.status == status and code in info.value.message


def test_read_timeout_is_a_504() -> None:
    with BedrockRuntimeFake(delay=2.0) as fake:
        with pytest.raises(GatewayError) as info:
            make(fake.url, timeout=Timeout(connect=2, read=0.3)).chat(CHAT_REQUEST)
    assert info.value.status == 504


def test_unreachable_endpoint_is_a_502() -> None:
    with pytest.raises(GatewayError) as info:
        make(f"http://127.0.0.1:{free_port()}", timeout=Timeout(connect=1, read=1)).chat(CHAT_REQUEST)
    assert info.value.status == 502


def test_no_credentials_is_a_clear_502(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with BedrockRuntimeFake() as fake:
        config = BedrockConfig().load({"aws_config": {"aws_region": "us-east-1", "endpoint_url": fake.url}})
        with pytest.raises(GatewayError) as info:
            BedrockProvider(CLAUDE, config, session=None).chat(CHAT_REQUEST)
    assert info.value.status == 502 and "credentials" in info.value.message


def test_reply_that_is_not_json_is_a_502() -> None:
    with BedrockRuntimeFake(lambda call: Reply(200, b"<html>", {"Content-Type": "application/json"})) as fake:
        with pytest.raises(UpstreamError):
            make(fake.url, "meta.llama3-8b-instruct-v1:0", COMPLETIONS).completions({"prompt": "x"})


def test_model_id_is_percent_encoded_in_the_path() -> None:
    with BedrockRuntimeFake() as fake:
        make(fake.url, "us.meta.llama3-1-8b-instruct-v1:0", COMPLETIONS).completions({"prompt": "a b"})
        assert fake.server.requests[0].path == "/model/us.meta.llama3-1-8b-instruct-v1%3A0/invoke"


def test_abandoned_stream_releases_the_upstream_connection() -> None:
    frames = [es.event("messageStart", {"role": "assistant"})]
    frames += [es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"w{i} "}}) for i in range(40)]
    with BedrockRuntimeFake(lambda call: stream_reply(frames, interval=0.05)) as fake:
        stream = make(fake.url).chat_stream({**CHAT_REQUEST, "stream": True})
        next(stream), next(stream)
        stream.close()  # what the gateway does when its client hangs up
        deadline = time.monotonic() + 5
        while fake.server.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.server.disconnects == 1


def test_through_the_app_one_client_per_endpoint_and_errors_rendered(make_app: Any) -> None:
    def script(call: Any) -> Reply | None:
        if "throttle" in json.dumps(call.body):
            return error(429, "ThrottlingException", "Too many requests")
        return None

    with BedrockRuntimeFake(script, keys={AKID: SECRET}) as fake:
        app = make_app(f"""
endpoints:
  - name: b
    endpoint_type: llm/v1/chat
    model:
      provider: bedrock
      name: {CLAUDE}
      config: {{aws_config: {{aws_region: us-east-1, endpoint_url: '{fake.url}',
                              aws_access_key_id: {AKID}, aws_secret_access_key: {SECRET}}}}}
""")
        client = app.test_client()
        first = app.extensions["ai_gateway"].get("b").provider.client
        for text in ("one", "two"):
            resp = client.post("/gateway/b/invocations", json={"messages": [{"role": "user", "content": text}]})
            assert resp.status_code == 200 and resp.get_json()["choices"][0]["message"]["content"] == f"You said: {text}"
        assert app.extensions["ai_gateway"].get("b").provider.client is first
        resp = client.post("/endpoints/b/invocations", json={"messages": [{"role": "user", "content": "throttle"}]})
        assert resp.status_code == 429 and "ThrottlingException" in resp.get_json()["detail"]
        resp = client.post("/endpoints/b/invocations", json={"messages": [{"role": "user", "content": "x"}], "logit_bias": {}})
        assert resp.status_code == 422 and "logit_bias" in resp.get_json()["detail"]
        assert SECRET not in resp.get_data(as_text=True)
