"""The lean transport against scripted local servers: framing, keep-alive, timeouts, TLS, fallbacks."""
from __future__ import annotations

import gzip
import socket
import ssl
import threading
import time
from typing import Callable

import pytest
import requests
import responses

from app.http import lean_post, make_session
from app.transport import LeanAdapter
from tests.live import FakeUpstream, Reply

Script = Callable[[socket.socket, bytes], bool]  # (connection, request bytes) -> keep the connection?


class Scripted:
    """A local TCP server answering each request with bytes chosen by `script`; counts connections."""

    def __init__(self, script: Script, *, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> "Scripted":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.server.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            buf = b""
            while not self.stopped.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                request, buf = head + b"\r\n\r\n" + rest[:length], rest[length:]
                self.requests.append(request)
                if not self.script(conn, request):
                    return
        except OSError:
            return
        finally:
            conn.close()


def fixed(reply: bytes, keep: bool = True) -> Script:
    def script(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(reply)
        return keep
    return script


JSON_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


def post(url: str, session: requests.Session | None = None, stream: bool = False,
         timeout: tuple[float, float] = (2, 2), headers: dict | None = None) -> requests.Response:
    session = session or make_session(url)
    return lean_post(session, url + "/v1/chat", b'{"a":1}', headers or {"Content-Type": "application/json"},
                     None, timeout, stream)


def test_the_request_on_the_wire() -> None:
    with Scripted(fixed(JSON_REPLY)) as server:
        session = make_session(server.url)
        resp = lean_post(session, server.url + "/v1/chat", b'{"a":1}',
                         {"Content-Type": "application/json", "Authorization": "Bearer k"},
                         {"api-version": "1"}, (2, 2), False)
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat?api-version=1 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["Authorization"] == "Bearer k"
    assert headers["Content-Length"] == "7" and body == b'{"a":1}'
    assert headers["Accept-Encoding"] == "gzip, deflate"  # only what the transport decodes


def test_keep_alive_reuses_one_connection() -> None:
    with Scripted(fixed(JSON_REPLY)) as server:
        session = make_session(server.url)
        for _ in range(5):
            assert post(server.url, session).json() == {"ok": True}
    assert server.connections == 1 and len(server.requests) == 5


def test_connection_close_is_honoured() -> None:
    reply = JSON_REPLY.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
    with Scripted(fixed(reply, keep=False)) as server:
        session = make_session(server.url)
        for _ in range(3):
            assert post(server.url, session).json() == {"ok": True}
    assert server.connections == 3


def test_body_delimited_by_close() -> None:
    reply = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"old\":1}"
    with Scripted(fixed(reply, keep=False)) as server:
        session = make_session(server.url)
        assert post(server.url, session).json() == {"old": 1}
        assert post(server.url, session).json() == {"old": 1}
    assert server.connections == 2


def test_chunks_arrive_as_they_are_sent() -> None:
    release = threading.Event()

    def script(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\r\n")
        release.wait(5)
        conn.sendall(b"7;ext=1\r\ndata: 2\r\n0\r\nX-Trailer: t\r\n\r\n")
        return True

    with Scripted(script) as server:
        session = make_session(server.url)
        resp = post(server.url, session, stream=True)
        chunks = resp.iter_content(chunk_size=None)
        assert next(chunks) == b"data: 1"  # before the server sends the rest
        release.set()
        assert list(chunks) == [b"data: 2"]
        resp.close()
        release.clear()
        release.set()
        assert post(server.url, session, stream=True).content == b"data: 1data: 2"
    assert server.connections == 1  # a fully read stream gives its connection back


def test_an_abandoned_stream_is_not_reused() -> None:
    def script(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        time.sleep(0.3)
        conn.sendall(b"3\r\ndef\r\n0\r\n\r\n")
        return True

    with Scripted(script) as server:
        session = make_session(server.url)
        resp = post(server.url, session, stream=True)
        assert next(resp.iter_content(None)) == b"abc"
        resp.close()  # the rest of the body is unread: the connection cannot carry another call
        assert post(server.url, session).content == b"abcdef"
    assert server.connections == 2


def test_gzip_bodies_are_decoded() -> None:
    packed = gzip.compress(b'{"zipped":true}')
    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
             b"Content-Length: %d\r\n\r\n" % len(packed)) + packed
    with Scripted(fixed(reply)) as server:
        assert post(server.url).json() == {"zipped": True}


def test_interim_replies_are_skipped_and_204_has_no_body() -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-Id: 7\r\n\r\n"
    with Scripted(fixed(reply)) as server:
        session = make_session(server.url)
        resp = post(server.url, session)
        assert resp.status_code == 204 and resp.content == b"" and resp.headers["x-id"] == "7"
        assert post(server.url, session).status_code == 204
    assert server.connections == 1


def test_error_statuses_and_repeated_headers_reach_the_caller() -> None:
    body = b'{"error":{"message":"slow down"}}'
    reply = (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nX-A: 1\r\nX-A: 2\r\n"
             b"Content-Length: %d\r\n\r\n" % len(body)) + body
    with Scripted(fixed(reply)) as server:
        resp = post(server.url)
    assert resp.status_code == 429 and resp.reason == "Too Many Requests"
    assert resp.headers["retry-after"] == "3" and resp.headers["X-A"] == "1, 2"
    assert resp.json()["error"]["message"] == "slow down"


@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH\r\n\r\n",                                          # not HTTP at all
    b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"short\":",         # body cut short
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",  # bad chunk size
    b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n",                    # bad length
    b"",                                                                 # hung up without a reply
])
def test_broken_replies_raise_requests_errors(reply: bytes) -> None:
    with Scripted(fixed(reply, keep=False)) as server:
        with pytest.raises(requests.RequestException):
            post(server.url)


def test_a_silent_upstream_raises_read_timeout() -> None:
    def script(conn: socket.socket, request: bytes) -> bool:
        time.sleep(3)
        return False

    with Scripted(script) as server:
        started = time.monotonic()
        with pytest.raises(requests.ReadTimeout):
            post(server.url, timeout=(2, 0.3))
        assert time.monotonic() - started < 2.5


def test_a_stream_that_stalls_raises_read_timeout() -> None:
    def script(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        time.sleep(3)
        return False

    with Scripted(script) as server:
        resp = post(server.url, stream=True, timeout=(2, 0.3))
        with pytest.raises(requests.ReadTimeout):
            list(resp.iter_content(None))


def test_refused_connection_raises_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(requests.ConnectionError):
            post(f"http://127.0.0.1:{port}")


def test_line_breaks_in_header_values_are_refused() -> None:
    with Scripted(fixed(JSON_REPLY)) as server:
        with pytest.raises(requests.exceptions.InvalidHeader):
            post(server.url, headers={"Authorization": "Bearer k\r\nX-Injected: 1"})
        assert server.requests == []


def test_proxied_calls_go_through_requests_own_path() -> None:
    with FakeUpstream(lambda seen: Reply(body={"via": "proxy"})) as proxy:
        session = make_session("http://upstream.invalid")
        session.proxies = {"http": proxy.url}
        resp = lean_post(session, "http://upstream.invalid/v1/chat", b"{}", {}, None, (2, 2), False)
        assert resp.json() == {"via": "proxy"}
        assert proxy.requests[0].path == "http://upstream.invalid/v1/chat"  # absolute form


@responses.activate
def test_a_patched_httpadapter_send_is_honoured() -> None:
    responses.post("https://upstream.test/v1/chat", json={"mocked": True})
    resp = post("https://upstream.test")
    assert resp.json() == {"mocked": True} and len(responses.calls) == 1


def test_the_session_mounts_the_lean_adapter() -> None:
    session = make_session("https://upstream.test")
    assert isinstance(session.get_adapter("https://upstream.test/v1"), LeanAdapter)
    assert isinstance(session.get_adapter("http://upstream.test/v1"), LeanAdapter)


@pytest.fixture(scope="module")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


def _tls_server(ca) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_tls_is_verified_against_the_configured_bundle(ca, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with Scripted(fixed(JSON_REPLY), tls=_tls_server(ca)) as server:
        session = make_session(server.url)
        session.verify = str(bundle)
        for _ in range(3):
            assert post(server.url, session).json() == {"ok": True}
        assert server.connections == 1
        # The default trust store does not know this CA: refused, like requests would.
        with pytest.raises(requests.exceptions.SSLError):
            post(server.url, make_session(server.url))
        unverified = make_session(server.url)
        unverified.verify = False
        assert post(server.url, unverified).json() == {"ok": True}


def test_raw_reads_of_any_size_return_the_body_in_order() -> None:
    def script(conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        return True

    with Scripted(script) as server:
        session = make_session(server.url)
        resp = post(server.url, session, stream=True)
        assert resp.raw.read(3) == b"hel"
        assert resp.raw.read(4) == b"lo w"
        assert list(resp.raw.stream(2)) == [b"or", b"ld"]
        assert resp.raw.read(10) == b""
        resp.close()
        resp = post(server.url, session, stream=True)
        assert b"".join(resp.iter_content(chunk_size=4)) == b"hello world"
        assert all(len(c) <= 4 for c in post(server.url, session, stream=True).iter_content(4))
    assert server.connections == 1  # every body was read to its end: one connection served all


@pytest.mark.parametrize("size_line", [b"-5", b"0x10", b"+5", b"1_0", b"", b"ffffffffffffffffff"])
def test_bad_chunk_sizes_are_refused(size_line: bytes) -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\nabcde\r\n0\r\n\r\n"
    with Scripted(fixed(reply, keep=False)) as server:
        with pytest.raises(requests.RequestException):
            post(server.url)


def test_a_large_chunk_arrives_in_pieces_and_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.upstream_body

    monkeypatch.setattr(app.upstream_body, "MAX_PIECE", 4)
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n2\r\nab\r\n0\r\n\r\n"
    with Scripted(fixed(reply)) as server:
        session = make_session(server.url)
        resp = post(server.url, session, stream=True)
        assert list(resp.iter_content(None)) == [b"0123", b"4567", b"89", b"ab"]
        assert post(server.url, session).content == b"0123456789ab"
    assert server.connections == 1


@pytest.mark.parametrize("exc, expected", [
    (TimeoutError(), requests.ReadTimeout),
    (ssl.SSLError(1, "bad record"), requests.exceptions.SSLError),
    (ConnectionResetError(), requests.ConnectionError),
    (BrokenPipeError(), requests.ConnectionError),
])
def test_socket_failures_become_requests_errors(exc: BaseException, expected: type) -> None:
    from app.upstream_body import socket_error

    assert isinstance(socket_error(exc, "in a test"), expected)
    assert isinstance(socket_error(TimeoutError(), "connecting", requests.ConnectTimeout), requests.ConnectTimeout)
    already = requests.ConnectionError("as it was")
    assert socket_error(already, "in a test") is already
    assert socket_error(KeyError("not a socket failure"), "in a test") is None
