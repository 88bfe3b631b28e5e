"""A fast fake OpenAI upstream: asyncio on raw sockets, delay and stream shape taken from `model`.

The gateway sends its configured model name upstream, so one fake serves every scenario: the
model `fake-d1.0-c50-i0.02` means "wait 1.0 s before the first byte, then (when the request
asks to stream) send 50 chunks 20 ms apart". Bodies follow OpenAI's wire format: a
`chat.completion` object, or `text/event-stream` `chat.completion.chunk` events sent with
chunked transfer encoding and ending in `data: [DONE]`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

MODEL_RE = re.compile(r"d(?P<delay>[0-9.]+)-c(?P<chunks>[0-9]+)-i(?P<interval>[0-9.]+)")
# One token per chunk; the load generator rebuilds the text to check it arrived intact.
WORD = "tok{} "


def parse_model(model: str) -> tuple[float, int, float]:
    """`fake-d<delay>-c<chunks>-i<interval>` -> (delay s, chunks, interval s); default no delay."""
    m = MODEL_RE.search(model or "")
    if not m:
        return 0.0, 5, 0.0
    return float(m["delay"]), int(m["chunks"]), float(m["interval"])


def expected_text(chunks: int) -> str:
    return "".join(WORD.format(i) for i in range(chunks))


def completion(model: str) -> bytes:
    # {"id","object":"chat.completion","created","model","choices":[{"index","message",
    #  "finish_reason"}],"usage":{...}} as in OpenAI's create-chat-completion reply.
    return json.dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
    }, separators=(",", ":")).encode()


def chunk_event(model: str, index: int, last: bool) -> bytes:
    # data: {"id","object":"chat.completion.chunk","created","model","choices":[{"index",
    #        "delta":{"content"},"finish_reason"}]}
    delta = {"role": "assistant", "content": WORD.format(index)} if index == 0 else {"content": WORD.format(index)}
    body = json.dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": 1700000000,
        "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}],
    }, separators=(",", ":")).encode()
    return b"data: " + body + b"\n\n"


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Upstream(asyncio.Protocol):
    """One keep-alive connection: parse requests with Content-Length bodies, answer each."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""
        self.busy = False
        self.closed = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        body = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            req = {}
        model = str(req.get("model") or "")
        delay, chunks, interval = parse_model(model)
        stream = bool(req.get("stream"))
        if not delay and not stream:
            self._send_json(model)
            self._next()
        else:
            self.busy = True
            asyncio.get_running_loop().create_task(self._slow(model, delay, stream, chunks, interval))

    def _send_json(self, model: str) -> None:
        body = completion(model)
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )

    async def _slow(self, model: str, delay: float, stream: bool, chunks: int, interval: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self.closed:
            return
        if not stream:
            self._send_json(model)
        else:
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for i in range(chunks):
                if i and interval:
                    await asyncio.sleep(interval)
                if self.closed:
                    return
                self.transport.write(chunked(chunk_event(model, i, i == chunks - 1)))
            self.transport.write(chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        self.busy = False
        if self.buf:
            self._next()


async def serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Upstream, host, port, backlog=4096)
    print(f"fake upstream on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
