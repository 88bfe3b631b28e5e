"""Real gunicorn with gevent workers: streaming, hot reload under load, disconnects, SIGTERM drain."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import requests

from tests.live import FakeUpstream, Gunicorn, Reply, sse

CHAT = {"messages": [{"role": "user", "content": "hello world"}]}


def openai_config(base: str, extra: str = "") -> str:
    return f"""
endpoints:
  - name: gpt
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {{openai_api_key: sk-live-test, openai_api_base: '{base}/v1'}}
{extra}"""


def chunk(i: int) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}


def test_stream_chunks_arrive_as_produced(write_config):
    with FakeUpstream(lambda seen: Reply(chunks=sse(*[chunk(i) for i in range(5)]), chunk_interval=0.3,
                                         headers={"Content-Type": "text/event-stream"})) as up, \
            Gunicorn(write_config(openai_config(up.url))) as gw:
        start = time.monotonic()
        arrivals, events = [], []
        with requests.post(gw.url + "/endpoints/gpt/invocations", json={**CHAT, "stream": True},
                           stream=True, timeout=10) as r:
            assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith(b"data: "):
                    arrivals.append(time.monotonic() - start)
                    events.append(line[6:].decode())
        assert events[-1] == "[DONE]"
        assert "".join(json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]) == "w0 w1 w2 w3 w4 "
        # The first chunk came long before the last: nothing buffered the stream.
        assert arrivals[-1] - arrivals[0] > 1.0
        assert up.requests[0].headers["Authorization"] == "Bearer sk-live-test"


def test_client_disconnect_releases_upstream(write_config):
    def slow(seen):
        return Reply(chunks=sse(*[chunk(i) for i in range(200)]), chunk_interval=0.05,
                     headers={"Content-Type": "text/event-stream"})

    with FakeUpstream(slow) as up, Gunicorn(write_config(openai_config(up.url))) as gw:
        r = requests.post(gw.url + "/v1/chat/completions", json={"model": "gpt", **CHAT, "stream": True},
                          stream=True, timeout=10)
        lines = r.iter_lines()
        got = 0
        for line in lines:
            if line.startswith(b"data: "):
                got += 1
            if got == 3:
                break
        r.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)  # hang up like a closed browser tab
        r.close()
        deadline = time.monotonic() + 5  # 200 chunks would take 10 s if the upstream kept going
        while up.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert up.disconnects == 1


def test_hot_reload_under_load_has_zero_failures(write_config):
    config_text = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {{provider: echo, name: {model}, config: {{stream_interval: 0.01}}}}
  - name: stable
    endpoint_type: llm/v1/embeddings
    model: {{provider: echo, name: stable}}
"""
    path = write_config(config_text.format(model="v0"))
    failures, models, stop = [], set(), threading.Event()

    def hammer(stream: bool) -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.post(gw.url + "/endpoints/chat/invocations", json={**CHAT, "stream": stream}, timeout=10)
                if r.status_code != 200 or (stream and not r.text.rstrip().endswith("data: [DONE]")):
                    failures.append((r.status_code, r.text[:200]))
                elif not stream:
                    models.add(r.json()["model"])
            except requests.RequestException as exc:
                failures.append(repr(exc))

    with Gunicorn(path) as gw:
        threads = [threading.Thread(target=hammer, args=(i % 2 == 0,)) for i in range(6)]
        for t in threads:
            t.start()
        try:
            for version in range(1, 5):
                time.sleep(0.6)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(config_text.format(model=f"v{version}"))
                os.replace(tmp, path)  # atomic rename, as editors and config tools do
            # A bad edit is rejected and the last good config keeps serving.
            time.sleep(0.6)
            path.write_text("endpoints: [{name: chat, endpoint_type: llm/v1/chat, model: {provider: nope, name: x}}]")
            time.sleep(1.5)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        assert failures == []
        assert {"v0", "v4"} <= models
        # Every worker serves the last good config (several requests spread over both workers).
        seen = {requests.post(gw.url + "/endpoints/chat/invocations", json=CHAT, timeout=5).json()["model"]
                for _ in range(20)}
        assert seen == {"v4"}
        assert "Config reload rejected" in gw.log() and "unknown provider 'nope'" in gw.log()


def test_sigterm_lets_in_flight_streams_finish(write_config):
    config = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: e, config: {stream_interval: 0.1}}
"""
    gw = Gunicorn(write_config(config), graceful_timeout=20).start()
    try:
        words = " ".join(f"w{i}" for i in range(20))  # 20 words, 0.1 s apart: about 2 s of stream
        r = requests.post(gw.url + "/endpoints/chat/invocations",
                          json={"messages": [{"role": "user", "content": words}], "stream": True},
                          stream=True, timeout=30)
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith(b"data: "))
        assert first
        gw.proc.send_signal(15)
        rest = [line for line in lines if line.startswith(b"data: ")]
        assert rest[-1] == b"data: [DONE]"
        text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in rest[:-1])
        assert text == words
        assert gw.proc.wait(20) == 0
    finally:
        gw.stop()
