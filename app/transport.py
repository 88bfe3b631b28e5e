"""A lean HTTP/1.1 keep-alive transport for upstream calls, mounted as a requests adapter."""
from __future__ import annotations

import socket
import ssl
import zlib
from functools import lru_cache
from typing import Iterator, Mapping
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import (
    ChunkedEncodingError, ConnectionError, ConnectTimeout, ContentDecodingError, InvalidHeader,
    InvalidURL,
    ReadTimeout, SSLError,
)
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, select_proxy

from app.pooled import PooledAdapter, readable_now

# The `send` requests ships with; a different one on the class means somebody patched it
# (`responses`, a test double): then every call goes through the patched path.
_HTTPADAPTER_SEND = HTTPAdapter.send
MAX_LINE = 65536
MAX_HEADERS = 100
READ_SIZE = 8192  # the buffer of each connection (larger reads bypass it)
# What this transport decodes; requests' default Accept-Encoding may also name br or zstd.
ACCEPT_ENCODING = "gzip, deflate"
_DEFAULT_ACCEPT_ENCODING = requests.utils.default_headers()["Accept-Encoding"]


class _Target:
    """Where a URL points: scheme, host, port, the request target and the Host header."""

    __slots__ = ("tls", "host", "port", "target", "host_header", "host_line")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        try:
            self.target = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode("ascii")
        except UnicodeEncodeError:
            raise InvalidURL(f"The upstream URL {url!r} is not percent-encoded.") from None
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port == default else f"{host}:{self.port}"
        self.host_line = f"Host: {self.host_header}\r\n".encode("ascii")


@lru_cache(maxsize=512)
def target_of(url: str) -> _Target:
    return _Target(url)


@lru_cache(maxsize=16)
def tls_context(verify: bool | str, cert: tuple[str, ...] | str | None) -> ssl.SSLContext:
    """One client TLS context per (verify, cert), checking certificates like requests does."""
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        import os

        if os.path.isdir(bundle):
            context = ssl.create_default_context(capath=bundle)
        else:
            context = ssl.create_default_context(cafile=bundle)
    if cert:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else (cert[0], cert[1])
        context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


class Connection:
    """One open upstream socket and its buffered reader."""

    __slots__ = ("sock", "rfile", "key")

    def __init__(self, sock: socket.socket, key: tuple) -> None:
        self.sock = sock
        self.rfile = sock.makefile("rb", READ_SIZE)
        self.key = key

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()


class Body:
    """The body of one reply, read as it arrives; gives the connection back once fully read.

    It stands where requests expects urllib3's response (`Response.raw`): `stream`, `read`,
    `close`, `release_conn`. A body left unread is closed with its connection, never reused.
    """

    def __init__(self, adapter: "LeanAdapter", conn: Connection, length: int | None,
                 chunked: bool, reusable: bool, encoding: str | None, status: int, reason: str) -> None:
        self._adapter = adapter
        self._conn: Connection | None = conn
        self._left = length
        self._chunked = chunked
        self._reusable = reusable
        self._decoder = _decoder(encoding)
        self.status = status
        self.reason = reason
        self.done = length == 0 and not chunked
        self._source: Iterator[bytes] | None = None
        self._pending = b""

    # requests' Response.iter_content calls stream(); Response.close calls close/release_conn.
    def stream(self, amt: int | None = None, decode_content: bool = True) -> Iterator[bytes]:
        """The body as it arrives (pieces of at most `amt` bytes when it is given)."""
        if amt is None and not self._pending:
            for data in self._source_for(decode_content):  # not `yield from`: closing this
                yield data                                 # generator must not close the source
            return
        while True:
            data = self._take(amt, decode_content)
            if not data:
                return
            yield data

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        """Up to `amt` bytes (all that is left when None), as file objects read."""
        if amt is None:
            return b"".join(self.stream(None, decode_content))
        parts: list[bytes] = []
        wanted = amt
        while wanted > 0:
            data = self._take(wanted, decode_content)
            if not data:
                break
            parts.append(data)
            wanted -= len(data)
        return b"".join(parts)

    def _take(self, amt: int | None, decode_content: bool) -> bytes:
        data = self._pending or next(self._source_for(decode_content), b"")
        if amt is not None and len(data) > amt:
            self._pending = data[amt:]
            return data[:amt]
        self._pending = b""
        return data

    def _source_for(self, decode_content: bool) -> Iterator[bytes]:
        if self._source is None:
            self._source = self._decoded(decode_content)
        return self._source

    def _decoded(self, decode_content: bool) -> Iterator[bytes]:
        decoder = self._decoder if decode_content else None
        for data in self._pieces():
            if decoder is not None:
                data = self._decode(data)
            if data:
                yield data
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                yield tail

    def _decode(self, data: bytes) -> bytes:
        assert self._decoder is not None
        try:
            return self._decoder.decompress(data)
        except zlib.error as exc:
            self.close()
            raise ContentDecodingError(f"Could not decode the upstream reply: {exc}") from None

    def _pieces(self) -> Iterator[bytes]:
        """The raw body as it arrives: each chunk of a chunked body, or what each read gives."""
        conn = self._conn
        if conn is None or self.done:
            return
        rfile = conn.rfile
        try:
            if self._chunked:
                while True:
                    size_line = rfile.readline(MAX_LINE)
                    if not size_line.endswith(b"\n"):
                        raise ChunkedEncodingError("The upstream ended a chunked body early.")
                    try:
                        size = int(size_line.split(b";", 1)[0], 16)
                    except ValueError:
                        raise ChunkedEncodingError("The upstream sent a bad chunk size.") from None
                    if size == 0:
                        _skip_trailers(rfile)
                        break
                    data = rfile.read(size)
                    if len(data) < size or rfile.readline(MAX_LINE) not in (b"\r\n", b"\n"):
                        raise ChunkedEncodingError("The upstream ended a chunk early.")
                    yield data
            elif self._left is not None:
                while self._left > 0:
                    data = rfile.read1(min(self._left, READ_SIZE))
                    if not data:
                        raise ChunkedEncodingError("The upstream closed before the end of the body.")
                    self._left -= len(data)
                    yield data
            else:  # delimited by the close of the connection
                self._reusable = False
                while True:
                    data = rfile.read1(READ_SIZE)
                    if not data:
                        break
                    yield data
        except requests.RequestException:
            self.close()
            raise
        except TimeoutError:
            self.close()
            raise ReadTimeout("The upstream stopped sending.") from None
        except OSError as exc:
            self.close()
            raise ConnectionError(f"The upstream connection broke: {type(exc).__name__}") from None
        self.done = True
        self.release_conn()

    def finish(self, wait: float) -> bool:
        """Read the end of the body within `wait` seconds; True when the connection is kept.

        A stream consumer stops at the provider's terminal event while the end of the HTTP body
        (the last empty chunk) may still be in flight; reading it keeps the connection. Any
        data there instead (more events after the terminal one) drops the connection at once.
        """
        conn = self._conn
        if conn is None:
            return self.done
        if self._pending.strip():
            self._drop()
            return False
        try:
            conn.sock.settimeout(wait)
            for piece in self._pieces():
                if piece.strip():
                    self._drop()
                    return False
        except requests.RequestException:
            return False  # _pieces closed the connection
        return self.done

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def release_conn(self) -> None:
        """Back to the pool when the body was read to its end, else closed."""
        if self.done and self._reusable:
            conn, self._conn = self._conn, None
            if conn is not None:
                self._adapter.put_back(conn)
        else:
            self._drop()

    def close(self) -> None:
        self.release_conn()

    @property
    def closed(self) -> bool:
        return self._conn is None


def _skip_trailers(rfile: object) -> None:
    for _ in range(MAX_HEADERS):
        line = rfile.readline(MAX_LINE)  # type: ignore[attr-defined]
        if line in (b"\r\n", b"\n", b""):
            return
    raise ChunkedEncodingError("The upstream sent too many trailer lines.")


def _decoder(encoding: str | None) -> "zlib._Decompress | None":
    if not encoding or encoding == "identity":
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise ContentDecodingError(f"The upstream used a content encoding the gateway cannot read: {encoding}")


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
        head = _head(request, target)
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
            conn.sock.sendall(head + body if len(body) < 262144 else head)
            if len(body) >= 262144:
                conn.sock.sendall(body)
            status, reason, headers, version = _read_head(conn.rfile)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise ReadTimeout("The upstream did not answer in time.", request=request) from None
            if isinstance(exc, requests.RequestException):
                raise
            if isinstance(exc, ssl.SSLError):
                raise SSLError(f"TLS failed: {exc.reason or exc}", request=request) from None
            if isinstance(exc, OSError):
                raise ConnectionError(f"The upstream connection failed: {type(exc).__name__}",
                                      request=request) from None
            raise
        return self._response(request, conn, status, reason, headers, version, stream)

    def _response(self, request: requests.PreparedRequest, conn: Connection, status: int,
                  reason: str, headers: CaseInsensitiveDict, version: bytes, stream: bool) -> requests.Response:
        tokens = headers.get("Connection", "").lower()
        reusable = "close" not in tokens and (version == b"HTTP/1.1" or "keep-alive" in tokens)
        transfer = headers.get("Transfer-Encoding", "").lower()
        chunked = transfer.rstrip().endswith("chunked")
        length: int | None = None
        if status < 200 or status in (204, 304) or request.method == "HEAD":
            length = 0
        elif not chunked:
            if transfer:
                reusable = False  # an unknown coding: the body runs to the close
            elif "Content-Length" in headers:
                try:
                    length = int(headers["Content-Length"].split(",")[0])
                except ValueError:
                    conn.close()
                    raise ConnectionError("The upstream sent a bad Content-Length.", request=request) from None
                if length < 0:
                    conn.close()
                    raise ConnectionError("The upstream sent a bad Content-Length.", request=request)
        encoding = headers.get("Content-Encoding", "").strip().lower() or None
        try:
            raw = Body(self, conn, length, chunked, reusable, encoding, status, reason)
        except requests.RequestException:
            conn.close()
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

    def _connect(self, key: tuple, target: _Target, connect: float | None,
                 verify: bool | str) -> Connection:
        try:
            sock = socket.create_connection((target.host, target.port), timeout=connect)
        except TimeoutError:
            raise ConnectTimeout(f"Connecting to {target.host_header} timed out.") from None
        except OSError as exc:
            raise ConnectionError(f"Could not connect to {target.host_header}: {type(exc).__name__}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.tls:
                sock = tls_context(verify, None).wrap_socket(sock, server_hostname=target.host)
        except TimeoutError:
            sock.close()
            raise ConnectTimeout(f"The TLS handshake with {target.host_header} timed out.") from None
        except ssl.SSLError as exc:
            sock.close()
            raise SSLError(f"TLS with {target.host_header} failed: {exc.reason or exc}") from None
        except OSError as exc:
            sock.close()
            raise ConnectionError(f"Could not connect to {target.host_header}: {type(exc).__name__}") from None
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


def _head(request: requests.PreparedRequest, target: _Target) -> bytes:
    """The request line and headers, encoded; each (name, value) line is encoded once."""
    headers = request.headers
    pairs = headers._store.values() if isinstance(headers, CaseInsensitiveDict) else headers.items()
    host = target.host_line
    lines = []
    length = False
    for name, value in pairs:
        if value is None:
            continue
        lower = name.lower()
        if lower == "content-length":
            length = True
            if not str(value).isdigit():
                raise InvalidHeader(f"Content-Length {value!r} is not a byte count.")
            lines.append(b"Content-Length: %d\r\n" % int(value))
        elif lower == "host":
            host = _line(name, value)
        else:
            lines.append(_LINES.get((name, value)) or _line(name, value))
    if request.body and not length:
        lines.append(b"Content-Length: %d\r\n" % len(request.body))
    return b"".join((request.method.encode("ascii"), b" ", target.target, b" HTTP/1.1\r\n", host,
                     *lines, b"\r\n"))


_LINES: dict[tuple[str, str], bytes] = {}


def _line(name: str, value: str) -> bytes:
    """One encoded header line, checked: no line breaks, only characters HTTP headers carry."""
    if name.lower() == "accept-encoding" and value == _DEFAULT_ACCEPT_ENCODING:
        value = ACCEPT_ENCODING
    if "\n" in name or "\r" in name or "\n" in value or "\r" in value:
        raise InvalidHeader(f"Header {name!r} holds a line break.")
    try:
        line = f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidHeader(f"Header {name!r} holds characters HTTP headers cannot carry.") from None
    if len(_LINES) >= 4096:  # the same few headers repeat forever; bound what varies
        _LINES.clear()
    _LINES[(name, value)] = line
    return line


def _read_head(rfile: object) -> tuple[int, str, CaseInsensitiveDict, bytes]:
    """Status line and headers of the reply, skipping interim 1xx replies."""
    while True:
        line = rfile.readline(MAX_LINE)  # type: ignore[attr-defined]
        if not line:
            raise ConnectionError("The upstream closed the connection without a reply.")
        version, _, rest = line.rstrip(b"\r\n").partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ConnectionError("The upstream's reply is not HTTP/1.1.")
        status = int(code)
        headers: CaseInsensitiveDict = CaseInsensitiveDict()
        for _ in range(MAX_HEADERS + 1):
            line = rfile.readline(MAX_LINE)  # type: ignore[attr-defined]
            if line in (b"\r\n", b"\n"):
                break
            if not line.endswith(b"\n"):
                raise ConnectionError("The upstream's reply headers are cut short or too long.")
            name, sep, value = line.partition(b":")
            if not sep:
                raise ConnectionError("The upstream sent a malformed header line.")
            key = name.strip().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        else:
            raise ConnectionError("The upstream sent too many headers.")
        if 100 <= status < 200 and status != 101:
            continue
        return status, reason.decode("latin-1", "replace"), headers, version
