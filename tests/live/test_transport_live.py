"""Live: the gateway's own upstream transport under gunicorn's gevent workers, over TLS."""
from __future__ import annotations

import ssl
import textwrap
import time

import pytest
import requests

from tests.live import FakeUpstream, Gunicorn, Reply, sse

trustme = pytest.importorskip("trustme")

CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi "}, "finish_reason": None}]}
COMPLETION = {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "over tls"},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
CHAT = {"messages": [{"role": "user", "content": "hello"}]}


def reply(seen) -> Reply:  # type: ignore[no-untyped-def]
    body = seen.json()
    if body.get("model") == "slow":
        return Reply(body=COMPLETION, delay=3)
    if body.get("stream"):
        return Reply(headers={"Content-Type": "text/event-stream"}, chunks=sse(CHUNK, CHUNK, CHUNK),
                     chunk_interval=0.05)
    return Reply(body=COMPLETION)


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory):
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    workdir = tmp_path_factory.mktemp("tls")
    bundle = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with FakeUpstream(reply, tls=server_context) as upstream:
        config = workdir / "gateway.yaml"
        config.write_text(textwrap.dedent(f"""
            endpoints:
              - name: chat
                endpoint_type: llm/v1/chat
                model:
                  provider: openai
                  name: gpt-4o-mini
                  config: {{openai_api_key: sk-live-tls-test, openai_api_base: "{upstream.url}/v1"}}
              - name: slow
                endpoint_type: llm/v1/chat
                timeout: {{connect: 2, read: 0.5}}
                model:
                  provider: openai
                  name: slow
                  config: {{openai_api_key: sk-live-tls-test, openai_api_base: "{upstream.url}/v1"}}
        """))
        with Gunicorn(config, workers=1, env={"REQUESTS_CA_BUNDLE": str(bundle)}) as gateway:
            yield upstream, gateway


def test_calls_and_streams_over_verified_tls_share_pooled_connections(tls_stack) -> None:
    upstream, gateway = tls_stack
    before = upstream.connections
    for _ in range(3):
        r = requests.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "over tls"
    for _ in range(2):
        with requests.post(f"{gateway.url}/endpoints/chat/invocations", json={**CHAT, "stream": True},
                           stream=True, timeout=10) as r:
            assert r.status_code == 200
            events = [line for line in r.iter_lines() if line]
        assert events[-1] == b"data: [DONE]" and len(events) == 4
    assert upstream.requests[-1].headers["Authorization"] == "Bearer sk-live-tls-test"
    # One worker, calls one after another: one TLS connection carried all five.
    assert upstream.connections - before == 1


def test_a_silent_upstream_is_a_timeout_without_holding_the_worker(tls_stack) -> None:
    _, gateway = tls_stack
    started = time.monotonic()
    slow = requests.post(f"{gateway.url}/endpoints/slow/invocations", json=CHAT, timeout=10)
    assert slow.status_code == 504, slow.text
    assert time.monotonic() - started < 2.5  # the endpoint's 0.5 s read timeout
    assert "sk-live-tls-test" not in slow.text
    # The same single worker still answers while the slow upstream holds its old connection.
    assert requests.post(f"{gateway.url}/endpoints/chat/invocations", json=CHAT, timeout=10).status_code == 200
