"""HTTP/1.1 framing for the upstream transport: request heads out, reply heads and body framing in."""
from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Mapping
from urllib.parse import urlsplit

import requests
from requests.exceptions import (
    ChunkedEncodingError, ConnectionError, ContentDecodingError, InvalidHeader, InvalidURL,
)
from requests.structures import CaseInsensitiveDict

MAX_LINE = 65536
MAX_HEADERS = 100
# What the transport decodes; requests' default Accept-Encoding may also name br or zstd.
ACCEPT_ENCODING = "gzip, deflate"
_DEFAULT_ACCEPT_ENCODING = requests.utils.default_headers()["Accept-Encoding"]


class Target:
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
def target_of(url: str) -> Target:
    return Target(url)


def request_head(request: requests.PreparedRequest, target: Target) -> bytes:
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
            host = header_line(name, value)
        else:
            lines.append(_LINES.get((name, value)) or header_line(name, value))
    if request.body and not length:
        lines.append(b"Content-Length: %d\r\n" % len(request.body))
    return b"".join((request.method.encode("ascii"), b" ", target.target, b" HTTP/1.1\r\n", host,
                     *lines, b"\r\n"))


_LINES: dict[tuple[str, str], bytes] = {}


def header_line(name: str, value: str) -> bytes:
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


def read_head(rfile: object) -> tuple[int, str, CaseInsensitiveDict, bytes]:
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


def framing(status: int, method: str | None, version: bytes, headers: Mapping[str, str]
            ) -> tuple[int | None, bool, bool]:
    """How the reply's body is delimited: (Content-Length or None, chunked, connection reusable).

    RFC 9112 section 6.3: no body for 1xx/204/304 and HEAD; chunked when it is the final
    transfer coding; else Content-Length; else the body runs to the close of the connection.
    """
    tokens = headers.get("Connection", "").lower()
    reusable = "close" not in tokens and (version == b"HTTP/1.1" or "keep-alive" in tokens)
    transfer = headers.get("Transfer-Encoding", "").lower()
    chunked = transfer.rstrip().endswith("chunked")
    if status < 200 or status in (204, 304) or method == "HEAD":
        return 0, False, reusable
    if chunked:
        return None, True, reusable
    if transfer:
        return None, False, False  # an unknown coding: the body runs to the close
    if "Content-Length" not in headers:
        return None, False, False
    try:
        length = int(headers["Content-Length"].split(",")[0])
    except ValueError:
        length = -1
    if length < 0:
        raise ConnectionError("The upstream sent a bad Content-Length.")
    return length, False, reusable


def skip_trailers(rfile: object) -> None:
    for _ in range(MAX_HEADERS):
        line = rfile.readline(MAX_LINE)  # type: ignore[attr-defined]
        if line in (b"\r\n", b"\n", b""):
            return
    raise ChunkedEncodingError("The upstream sent too many trailer lines.")


def decoder(encoding: str | None) -> "zlib._Decompress | None":
    if not encoding or encoding == "identity":
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise ContentDecodingError(f"The upstream used a content encoding the gateway cannot read: {encoding}")
