"""Bedrock end to end: real gunicorn with one gevent worker in front of the local fake runtime."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest
import requests

from tests.fakes import eventstream as es
from tests.fakes.bedrock_runtime import BedrockRuntimeFake, Call, Reply, error, stream_reply
from tests.live import Gunicorn

AKID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def script(call: Call) -> Reply | None:
    """Test hooks keyed on the user's text; everything else gets the fake's echo answer."""
    text = json.dumps(call.body)
    if "slow" in text:
        time.sleep(1.0)
    if "throttle" in text:
        return error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    if "break" in text and call.op == "converse-stream":
        return stream_reply([es.event("messageStart", {"role": "assistant"}),
                             es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Par"}}),
                             es.exception("modelStreamErrorException", "The model failed mid-answer.",
                                          originalStatusCode=500, originalMessage="boom")])
    return None


@pytest.fixture(scope="module")
def fake() -> Iterator[BedrockRuntimeFake]:
    with BedrockRuntimeFake(script, keys={AKID: SECRET}) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(fake: BedrockRuntimeFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    aws = (f"{{aws_region: us-east-1, endpoint_url: '{fake.url}', aws_access_key_id: $BR_AKID, "
           "aws_secret_access_key: $BR_SECRET}")
    path = tmp_path_factory.mktemp("bedrock") / "gateway.yaml"
    path.write_text(f"""
endpoints:
  - name: claude
    endpoint_type: llm/v1/chat
    model: {{provider: bedrock, name: "anthropic.claude-3-haiku-20240307-v1:0", config: {{aws_config: {aws}}}}}
    timeout: {{connect: 5, read: 20}}
  - name: llama
    endpoint_type: llm/v1/completions
    model: {{provider: amazon-bedrock, name: "us.meta.llama3-1-8b-instruct-v1:0", config: {{aws_config: {aws}}}}}
  - name: titan-embed
    endpoint_type: llm/v1/embeddings
    model: {{provider: bedrock, name: "amazon.titan-embed-text-v2:0", config: {{aws_config: {aws}}}}}
""")
    env = {"BR_AKID": AKID, "BR_SECRET": SECRET, "AWS_EC2_METADATA_DISABLED": "true"}
    with Gunicorn(path, workers=1, env=env) as server:
        yield server


def sse_data(resp: requests.Response) -> list[str]:
    return [line[6:] for line in resp.iter_lines(decode_unicode=True) if line.startswith("data: ")]


def test_chat(gateway: Gunicorn) -> None:
    resp = requests.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                         json={"model": "claude", "messages": [{"role": "user", "content": "hello there"}]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "You said: hello there"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


def test_streamed_chat(gateway: Gunicorn) -> None:
    resp = requests.post(f"{gateway.url}/endpoints/claude/invocations", timeout=10, stream=True, json={
        "messages": [{"role": "user", "content": "stream me"}], "stream": True, "stream_options": {"include_usage": True}})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    data = sse_data(resp)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "You said: stream me"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == 6


def test_completions_stream_llama(gateway: Gunicorn, fake: BedrockRuntimeFake) -> None:
    resp = requests.post(f"{gateway.url}/v1/completions", timeout=10, stream=True,
                         json={"model": "llama", "prompt": "one two three", "max_tokens": 3, "stream": True})
    data = sse_data(resp)
    assert resp.status_code == 200 and data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Echo: one two"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    sent = [c for c in fake.calls if c.op == "invoke-with-response-stream"][-1]
    assert sent.model == "us.meta.llama3-1-8b-instruct-v1:0" and sent.body == {"prompt": "one two three", "max_gen_len": 3}


def test_embeddings(gateway: Gunicorn) -> None:
    resp = requests.post(f"{gateway.url}/v1/embeddings", timeout=10,
                         json={"model": "titan-embed", "input": ["first text", "second"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [d["index"] for d in body["data"]] == [0, 1] and len(body["data"][0]["embedding"]) == 8
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_throttling_maps_to_429_without_leaking_keys(gateway: Gunicorn) -> None:
    resp = requests.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                         json={"model": "claude", "messages": [{"role": "user", "content": "throttle me"}]})
    assert resp.status_code == 429
    assert "ThrottlingException" in resp.json()["error"]["message"]
    assert AKID not in resp.text and SECRET not in resp.text and "Traceback" not in gateway.log()


def test_unsupported_parameter_is_a_4xx(gateway: Gunicorn) -> None:
    resp = requests.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                         json={"model": "claude", "n": 2, "messages": [{"role": "user", "content": "x"}]})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "n"


def test_exception_frame_mid_stream_becomes_an_error_event(gateway: Gunicorn) -> None:
    resp = requests.post(f"{gateway.url}/v1/chat/completions", timeout=10, stream=True, json={
        "model": "claude", "messages": [{"role": "user", "content": "break please"}], "stream": True})
    assert resp.status_code == 200
    data = sse_data(resp)
    last = json.loads(data[-1])
    assert "modelStreamErrorException" in last["error"]["message"]
    assert any('"Par"' in d for d in data[:-1])


def test_concurrent_slow_calls_do_not_block_the_worker(gateway: Gunicorn, fake: BedrockRuntimeFake) -> None:
    """50 Bedrock calls that each take 1 s upstream, through ONE gevent worker, finish together."""
    requests.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                  json={"model": "claude", "messages": [{"role": "user", "content": "warm up"}]})
    before = len(fake.calls)

    def one(i: int) -> tuple[int, str]:
        resp = requests.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                             json={"model": "claude", "messages": [{"role": "user", "content": f"slow {i}"}]})
        return resp.status_code, resp.json()["choices"][0]["message"]["content"] if resp.ok else resp.text

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    elapsed = time.monotonic() - start
    assert results == [(200, f"You said: slow {i}") for i in range(50)]
    assert elapsed < 5.0, f"50 concurrent 1-second Bedrock calls took {elapsed:.2f}s through one worker"
    arrivals = sorted(c.at for c in fake.calls[before:])
    assert len(arrivals) == 50 and arrivals[-1] - arrivals[0] < 1.0  # all were in flight at once
    print(f"\n50 concurrent 1-s Bedrock calls through one gevent worker: {elapsed:.2f}s")
