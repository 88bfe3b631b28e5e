"""The body of one upstream reply, read off its keep-alive connection as it arrives."""
from __future__ import annotations

import socket
import ssl
import zlib
from typing import Callable, Iterator

import requests
from requests.exceptions import (
    ChunkedEncodingError, ConnectionError, ContentDecodingError, ReadTimeout, SSLError,
)

from app.http1 import MAX_LINE, decoder, skip_trailers

READ_SIZE = 8192  # the buffer of each connection (larger reads bypass it)
MAX_PIECE = 1 << 20  # the most read at once from one chunk


def socket_error(exc: BaseException, doing: str,
                 timeout: type[requests.Timeout] = ReadTimeout) -> requests.RequestException | None:
    """requests' exception for a failure of an upstream socket while `doing` something; None
    for anything that is not a socket failure (the caller re-raises it as it is)."""
    if isinstance(exc, requests.RequestException):
        return exc
    if isinstance(exc, TimeoutError):
        return timeout(f"The upstream timed out {doing}.")
    if isinstance(exc, ssl.SSLError):
        return SSLError(f"TLS failed {doing}: {getattr(exc, 'reason', None) or exc}")
    if isinstance(exc, OSError):
        return ConnectionError(f"The upstream connection failed {doing}: {type(exc).__name__}")
    return None


def _chunk_size(line: bytes) -> int:
    """The size of a chunk from its size line (hex digits, then optional extensions)."""
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
        raise ChunkedEncodingError("The upstream sent a bad chunk size.")
    return int(digits, 16)


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

    def __init__(self, give_back: Callable[[Connection], None], conn: Connection, length: int | None,
                 chunked: bool, reusable: bool, encoding: str | None, status: int, reason: str) -> None:
        self._give_back = give_back
        self._conn: Connection | None = conn
        self._left = length
        self._chunked = chunked
        self._reusable = reusable
        self._decoder = decoder(encoding)
        self.status = status
        self.reason = reason
        self.done = length == 0 and not chunked
        self._source: Iterator[bytes] | None = None
        self._pending = b""
        self._chunk_left = 0  # bytes of the current chunk not read yet

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
                    if not self._chunk_left:
                        size_line = rfile.readline(MAX_LINE)
                        if not size_line.endswith(b"\n"):
                            raise ChunkedEncodingError("The upstream ended a chunked body early.")
                        size = _chunk_size(size_line)
                        if size == 0:
                            skip_trailers(rfile)
                            break
                        self._chunk_left = size
                    # A chunk is read whole (it is one stream event, usually) unless it is large:
                    # then in pieces, so a huge announced size never becomes one huge allocation.
                    data = rfile.read(min(self._chunk_left, MAX_PIECE))
                    if not data:
                        raise ChunkedEncodingError("The upstream ended a chunk early.")
                    self._chunk_left -= len(data)
                    if not self._chunk_left and rfile.readline(MAX_LINE) not in (b"\r\n", b"\n"):
                        raise ChunkedEncodingError("The upstream ended a chunk without its line end.")
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
        except Exception as exc:
            self.close()
            error = socket_error(exc, "while sending its reply")
            if error is None or error is exc:
                raise
            raise error from None
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
                self._give_back(conn)
        else:
            self._drop()

    def close(self) -> None:
        self.release_conn()

    @property
    def closed(self) -> bool:
        return self._conn is None
