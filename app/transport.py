"""A lean HTTP/1.1 keep-alive transport for upstream calls, mounted as a requests adapter."""
from __future__ import annotations

import os
import socket
import ssl
from functools import lru_cache
from typing import Mapping

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectTimeout
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, select_proxy

from app.http1 import Target, framing, read_head, request_head, target_of
from app.pooled import PooledAdapter, readable_now
from app.upstream_body import Body, Connection, socket_error

# The `send` requests ships with; a different one on the class means somebody patched it
# (`responses`, a test double): then every call goes through the patched path.
_HTTPADAPTER_SEND = HTTPAdapter.send


@lru_cache(maxsize=16)
def tls_context(verify: bool | str) -> ssl.SSLContext:
    """One client TLS context per `verify` setting, checking certificates like requests does."""
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        if os.path.isdir(bundle):
            context = ssl.create_default_context(capath=bundle)
        else:
            context = ssl.create_default_context(cafile=bundle)
    context.set_alpn_protocols(["http/1.1"])
    return context


class LeanAdapter(PooledAdapter):
    """A requests adapter that speaks HTTP/1.1 to the upstream on its own keep-alive sockets.

    Every upstream call went through requests' HTTPAdapter, urllib3 and http.client: about half
    of a gevent worker's CPU per call went into their layers (connection checks, header objects
    parsed by the email package, retries and pool bookkeeping that a gateway does not use).
    This adapter writes the request in one send and parses the reply itself, keeping the
    behaviour the gateway relies on: pooled keep-alive connections checked before reuse,
    connect and read timeouts, TLS verified as requests verifies it, chunked and
    Content-Length bodies streamed as they arrive, gzip/deflate decoding, requests' exception
    types. Calls through a proxy or with a client certificate, other methods than POST/GET,
    and every call while `HTTPAdapter.send` is patched (by `responses` in tests) go through
    requests' own path unchanged.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._maxsize = int(kwargs.get("pool_maxsize", 10))  # type: ignore[arg-type]
        self._idle: dict[tuple, list[Connection]] = {}

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False,
        timeout: float | tuple[float, float] | None = None, verify: bool | str = True,
        cert: str | tuple[str, str] | None = None, proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if (HTTPAdapter.send is not _HTTPADAPTER_SEND or cert
                or request.method not in ("POST", "GET")
                or (proxies and select_proxy(request.url, proxies))):  # type: ignore[arg-type]
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,  # type: ignore[arg-type]
                                proxies=proxies)
        connect, read = _timeouts(timeout)
        target = target_of(request.url)  # type: ignore[arg-type]
        key = (target.tls, target.host, target.port, verify if target.tls else None)
        head = request_head(request, target)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,  # type: ignore[arg-type]
                                proxies=proxies)
        conn = self._take(key)
        if conn is None:
            conn = self._connect(key, target, connect, verify)
        try:
            conn.sock.settimeout(read)
            if len(body) < 262144:
                conn.sock.sendall(head + body)  # one send for the usual request
            else:
                conn.sock.sendall(head)
                conn.sock.sendall(body)
            status, reason, headers, version = read_head(conn.rfile)
        except BaseException as exc:  # gevent's kill of this greenlet too: never pool the socket
            conn.close()
            error = socket_error(exc, "before its reply")
            if error is None:
                raise
            error.request = request
            if error is exc:
                raise
            raise error from None
        return self._response(request, conn, status, reason, headers, version, stream)

    def _response(self, request: requests.PreparedRequest, conn: Connection, status: int,
                  reason: str, headers: CaseInsensitiveDict, version: bytes, stream: bool) -> requests.Response:
        try:
            length, chunked, reusable = framing(status, request.method, version, headers)
            encoding = headers.get("Content-Encoding", "").strip().lower() or None
            raw = Body(self.put_back, conn, length, chunked, reusable, encoding, status, reason)
        except requests.RequestException as exc:
            conn.close()
            exc.request = request
            raise
        resp = requests.Response()
        resp.status_code = status
        resp.headers = headers
        resp.encoding = get_encoding_from_headers(headers)
        resp.raw = raw
        resp.reason = reason
        resp.url = request.url  # type: ignore[assignment]
        resp.request = request
        resp.connection = self
        if raw.done:
            raw.release_conn()
            resp._content = b""
            resp._content_consumed = True
        elif not stream:
            try:
                resp._content = raw.read()
            except requests.RequestException as exc:
                exc.request = request
                raise
            resp._content_consumed = True
        return resp

    def _take(self, key: tuple) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            # An idle socket that reads as ready was closed by the upstream (or got stray bytes).
            if readable_now(conn.sock):
                conn.close()
                continue
            return conn
        return None

    def put_back(self, conn: Connection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) < self._maxsize:
            idle.append(conn)
        else:
            conn.close()

    def _connect(self, key: tuple, target: Target, connect: float | None,
                 verify: bool | str) -> Connection:
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((target.host, target.port), timeout=connect)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.tls:  # the handshake runs under the connect timeout too
                sock = tls_context(verify).wrap_socket(sock, server_hostname=target.host)
        except BaseException as exc:
            if sock is not None:
                sock.close()
            error = socket_error(exc, f"connecting to {target.host_header}", ConnectTimeout)
            if error is None or error is exc:
                raise
            raise error from None
        return Connection(sock, key)

    def close(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
        super().close()


def _timeouts(timeout: float | tuple[float, float] | None) -> tuple[float | None, float | None]:
    if isinstance(timeout, tuple):
        return timeout
    return timeout, timeout
