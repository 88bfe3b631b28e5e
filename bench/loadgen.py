"""A cheap HTTP/1.1 keep-alive load generator (asyncio protocols, one connection per user).

Run as its own process so it can be pinned to a CPU; prints one JSON object with every
request's latency (and, for streams, time to first byte and whether the content was intact).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)  # seconds, request sent -> last byte
    ttfb: list[float] = field(default_factory=list)  # seconds, request sent -> first body byte

    def fail(self, why: str) -> None:
        self.failed += 1
        self.errors[why] = self.errors.get(why, 0) + 1


class Conn(asyncio.Protocol):
    """One keep-alive connection that parses Content-Length and chunked responses."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.first_body: float | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter and not self.waiter.done():
            self._parse()

    def request(self, raw: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.first_body = None
        self.status = 0
        self.body = bytearray()
        self.state = "head"
        self.remaining = 0
        self.transport.write(raw)
        if self.buf:
            self._parse()
        return self.waiter

    def _parse(self) -> None:
        buf = self.buf
        while True:
            if self.state == "head":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).decode("latin-1").lower()
                del buf[:end + 4]
                self.status = int(head[9:12])
                if "transfer-encoding: chunked" in head:
                    self.state = "size"
                else:
                    i = head.find("content-length:")
                    self.remaining = int(head[i + 15:head.find("\r\n", i) if head.find("\r\n", i) > 0 else None]) if i >= 0 else 0
                    self.state = "fixed"
            elif self.state == "fixed":
                if buf and self.first_body is None:
                    self.first_body = time.perf_counter()
                if len(buf) < self.remaining:
                    return
                self.body += buf[:self.remaining]
                del buf[:self.remaining]
                return self._done()
            elif self.state == "size":
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";")[0], 16)
                del buf[:end + 2]
                if size == 0:
                    self.state = "trailer"
                else:
                    self.remaining = size
                    self.state = "chunk"
            elif self.state == "chunk":
                if buf and self.first_body is None:
                    self.first_body = time.perf_counter()
                if len(buf) < self.remaining + 2:
                    return
                self.body += buf[:self.remaining]
                del buf[:self.remaining + 2]
                self.state = "size"
            elif self.state == "trailer":
                if len(buf) < 2:
                    return
                del buf[:2]
                return self._done()

    def _done(self) -> None:
        self.state = "idle"
        if self.waiter and not self.waiter.done():
            self.waiter.set_result((self.status, bytes(self.body)))


def stream_text(body: bytes) -> tuple[str, bool]:
    """Rebuild the streamed text from `data:` events; True when the last event is [DONE]."""
    text, last = [], b""
    for line in body.split(b"\n"):
        if not line.startswith(b"data: "):
            continue
        last = line[6:]
        if last != b"[DONE]":
            for choice in json.loads(last).get("choices") or ():
                text.append((choice.get("delta") or {}).get("content") or "")
    return "".join(text), last == b"[DONE]"


async def run(url: str, body: bytes, concurrency: int, requests: int, stream_expect: str | None,
              timeout: float, connect_parallel: int, require_done: bool = True,
              ramp: float = 0.0) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    result = Result()
    gate = asyncio.Semaphore(connect_parallel)

    async def connect() -> Conn | None:
        async with gate:
            try:
                _, conn = await asyncio.wait_for(loop.create_connection(Conn, host, port), timeout)
                return conn
            except (OSError, asyncio.TimeoutError) as exc:
                result.fail(f"connect: {type(exc).__name__}")
                return None

    # Open every connection first so the timed part measures requests, not the connect storm.
    conns = await asyncio.gather(*(connect() for _ in range(concurrency)))
    left = [requests]

    async def user(conn: Conn | None, index: int) -> None:
        if ramp:
            # Spread the users' first requests over `ramp` seconds: a steady state of
            # `concurrency` open requests instead of one burst of that many arrivals at once.
            await asyncio.sleep(ramp * index / concurrency)
        while left[0] > 0:
            left[0] -= 1
            if conn is None or conn.lost:
                conn = await connect()
                if conn is None:
                    continue
            start = time.perf_counter()
            try:
                status, data = await asyncio.wait_for(conn.request(raw), timeout)
            except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                result.fail(type(exc).__name__)
                conn.transport.close()
                conn = None
                continue
            end = time.perf_counter()
            if status != 200:
                result.fail(f"HTTP {status}")
                continue
            if stream_expect is not None:
                try:
                    text, done = stream_text(data)
                except ValueError:
                    result.fail("bad event")
                    continue
                if require_done and not done:
                    result.fail("no [DONE]")
                    continue
                if text != stream_expect:
                    result.fail("content changed")
                    continue
            elif b'"chat.completion"' not in data:
                result.fail("bad body")
                continue
            result.ok += 1
            result.latency.append(end - start)
            result.ttfb.append((conn.first_body or end) - start)
        if conn is not None:
            conn.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(user(c, i) for i, c in enumerate(conns)))
    wall = time.perf_counter() - started
    return {"ok": result.ok, "failed": result.failed, "errors": result.errors, "wall": wall,
            "latency": result.latency, "ttfb": result.ttfb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="JSON request body")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--stream-expect", help="expected streamed text (checks content and [DONE])")
    parser.add_argument("--no-done", action="store_true",
                        help="accept a stream without the final [DONE] event (MLflow sends none)")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="seconds over which the users start (0: all at once)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--connect-parallel", type=int, default=100)
    args = parser.parse_args()
    out = asyncio.run(run(args.url, args.body.encode(), args.concurrency, args.requests,
                          args.stream_expect, args.timeout, args.connect_parallel,
                          not args.no_done, args.ramp))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
