"""Live-test helpers: a local fake upstream HTTP server and a real gunicorn+gevent gateway."""
from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable

import requests

from app.cli import no_control_socket

ROOT = Path(__file__).resolve().parents[2]


_NO_CONTROL_SOCKET = no_control_socket()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    """What the fake answers: a status, headers, and a body (bytes) or a stream of byte chunks."""

    status: int = 200
    body: bytes | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | None = None  # sent with chunked transfer encoding
    chunk_interval: float = 0.0
    delay: float = 0.0  # before the status line


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeUpstream:
    """A threaded local HTTP/1.1 server; `handler(seen) -> Reply` decides each answer."""

    def __init__(self, handler: Callable[[Seen], Reply], *, tls: "ssl.SSLContext | None" = None) -> None:
        self.handler = handler
        self.connections = 0  # TCP connections accepted
        self.requests: list[Seen] = []
        self.disconnects = 0  # streams whose client went away before the last chunk
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                fake.requests.append(seen)
                reply = fake.handler(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunks is not None:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        for chunk in reply.chunks:
                            if reply.chunk_interval:
                                time.sleep(reply.chunk_interval)
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        fake.disconnects += 1
                        self.close_connection = True
                    return
                body = reply.body
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                    if "Content-Type" not in reply.headers:
                        self.send_header("Content-Type", "application/json")
                body = body or b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # bursts of concurrent test clients must not be refused

            def get_request(self):  # type: ignore[no-untyped-def]
                conn, addr = super().get_request()
                fake.connections += 1
                if tls is not None:  # the handshake runs in the connection's own thread
                    conn = tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                return conn, addr

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeUpstream":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def sse(*events: dict | str, done: bool = True) -> list[bytes]:
    """OpenAI-style `data:` frames, each a separate chunk, optionally ending with [DONE]."""
    frames = [b"data: " + (e if isinstance(e, str) else json.dumps(e)).encode() + b"\n\n" for e in events]
    return frames + ([b"data: [DONE]\n\n"] if done else [])


class Gunicorn:
    """`gunicorn -k gevent 'app:create_app()'` on a free loopback port, stopped on exit."""

    def __init__(self, config_path: str | Path, *, workers: int = 2, env: dict | None = None,
                 extra_args: Iterable[str] = (), graceful_timeout: int = 10,
                 target: str = "app:create_app()") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = str(config_path)
        self.argv = [
            sys.executable, "-m", "gunicorn", "--worker-class", "gevent", "--workers", str(workers),
            "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", str(graceful_timeout),
            *_NO_CONTROL_SOCKET, *extra_args, target,
        ]
        self.env = {**os.environ, "AI_GATEWAY_CONFIG": self.config_path,
                    "AI_GATEWAY_RELOAD_INTERVAL": "0.2", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(f"/tmp/ai-gateway-test-{self.port}.log")

    def start(self, timeout: float = 20.0) -> "Gunicorn":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            self._log.close()

    def __enter__(self) -> "Gunicorn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
