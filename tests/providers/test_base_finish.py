"""A stream that ends at its terminal event gives its upstream connection back to the pool."""
from __future__ import annotations

import socket
import time

import pytest

from app.http import make_session
from app.providers.openai import OpenAIProvider
from tests.live import FakeUpstream, Reply, sse

CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
REQUEST = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def _provider(url: str) -> OpenAIProvider:
    config = {"openai_api_key": "sk-test", "openai_api_base": url + "/v1"}
    return OpenAIProvider("gpt-4o-mini", config, session=make_session(url))


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the TCP connections the gateway's transport opens."""
    made: list[int] = []
    real = socket.create_connection

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counted)
    return made


def test_streams_reuse_one_connection(connects: list[int]) -> None:
    reply = lambda seen: Reply(headers={"Content-Type": "text/event-stream"}, chunks=sse(CHUNK, CHUNK))
    with FakeUpstream(reply) as up:
        provider = _provider(up.url)
        for _ in range(3):
            assert len(list(provider.chat_stream(dict(REQUEST)))) == 2
        assert len(up.requests) == 3
        assert len(connects) == 1


def _late_event():
    time.sleep(2)  # one event long after [DONE]
    yield b"data: late\n\n"


def _steady_events():
    for _ in range(40):  # an event every 50 ms, each inside the 0.1 s wait
        time.sleep(0.05)
        yield b"data: more\n\n"


@pytest.mark.parametrize("after_done", [_late_event, _steady_events])
def test_an_upstream_that_sends_on_after_done_does_not_hold_the_call(connects: list[int], after_done) -> None:
    def chunks():
        yield from sse(CHUNK)  # ends with data: [DONE]
        yield from after_done()

    with FakeUpstream(lambda seen: Reply(headers={"Content-Type": "text/event-stream"}, chunks=chunks())) as up:
        provider = _provider(up.url)
        for _ in range(2):
            started = time.monotonic()
            assert len(list(provider.chat_stream(dict(REQUEST)))) == 1
            assert time.monotonic() - started < 1.5  # bounded wait, then the connection is dropped
        assert len(connects) == 2  # not reused: each stream had its own
