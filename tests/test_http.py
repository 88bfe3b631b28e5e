"""lean_post must send what session.post sends, follow redirects and run hooks, but keep no cookies."""
from __future__ import annotations

import socket
import threading
import time

import requests
import responses

from app.http import lean_post, make_session

URL = "https://upstream.test/v1/chat/completions"


def _both(params=None):
    """The request session.post makes and the one lean_post makes, as responses saw them."""
    seen = []
    for send in ("post", "lean"):
        session = make_session("https://upstream.test")
        headers = {"Content-Type": "application/json", "Authorization": "Bearer k"}
        if send == "post":
            session.post(URL, data=b'{"a":1}', headers=headers, params=params, timeout=(1, 1))
        else:
            lean_post(session, URL, b'{"a":1}', headers, params, (1, 1), False)
        seen.append(responses.calls[-1].request)
    return seen


@responses.activate
def test_same_request_as_session_post() -> None:
    responses.post(URL, json={"ok": True})
    post, lean = _both()
    assert lean.url == post.url
    assert dict(lean.headers) == dict(post.headers)
    assert lean.body == post.body == b'{"a":1}'
    assert lean.headers["Content-Length"] == "7"


@responses.activate
def test_params_are_encoded_like_session_post() -> None:
    responses.post(URL, json={"ok": True})
    post, lean = _both({"api-version": "2024-06-01", "x y": "a&b"})
    assert lean.url == post.url
    assert "api-version=2024-06-01" in lean.url and "x+y=a%26b" in lean.url


@responses.activate
def test_redirect_is_followed_like_session_post() -> None:
    responses.post(URL, status=307, headers={"Location": "https://upstream.test/v2/chat"})
    responses.post("https://upstream.test/v2/chat", json={"moved": True})
    resp = lean_post(make_session("https://upstream.test"), URL, b"{}", {}, None, (1, 1), False)
    assert resp.json() == {"moved": True}
    assert [r.status_code for r in resp.history] == [307]
    assert responses.calls[-1].request.body == b"{}"


@responses.activate
def test_hooks_run_but_no_cookie_rides_on_a_later_call() -> None:
    # One session serves every user of an endpoint: an upstream Set-Cookie must not be sent
    # on somebody else's next call (session.post would send it).
    responses.post(URL, json={}, headers={"Set-Cookie": "lb=node-2; Path=/"})
    session = make_session("https://upstream.test")
    hooked = []
    session.hooks["response"].append(lambda r, **kw: hooked.append(r.status_code))
    lean_post(session, URL, b"{}", {}, None, (1, 1), False)
    assert not session.cookies
    lean_post(session, URL, b"{}", {}, None, (1, 1), False)
    assert "Cookie" not in responses.calls[-1].request.headers
    session.post(URL, data=b"{}", timeout=(1, 1))  # the session refuses cookies on any path
    assert not session.cookies
    assert hooked == [200, 200, 200]


@responses.activate
def test_a_cookie_set_by_a_redirect_follows_only_that_call() -> None:
    responses.post(URL, status=307, headers={"Location": "https://upstream.test/v2/chat",
                                             "Set-Cookie": "lb=node-2; Path=/"})
    responses.post("https://upstream.test/v2/chat", json={"moved": True})
    session = make_session("https://upstream.test")
    resp = lean_post(session, URL, b"{}", {}, None, (1, 1), False)
    assert resp.json() == {"moved": True}
    assert responses.calls[-1].request.headers["Cookie"] == "lb=node-2"
    assert not session.cookies
    responses.post(URL, json={})
    lean_post(session, URL, b"{}", {}, None, (1, 1), False)
    assert "Cookie" not in responses.calls[-1].request.headers


@responses.activate
def test_stream_keeps_the_body_unread() -> None:
    responses.post(URL, body=b"data: 1\n\n", content_type="text/event-stream")
    resp = lean_post(make_session("https://upstream.test"), URL, b"{}", {}, None, (1, 1), True)
    assert resp._content is False  # not consumed yet, as with session.post(stream=True)
    assert resp.raw.read() == b"data: 1\n\n"


def test_timeouts_raise_requests_errors() -> None:
    session = make_session("http://127.0.0.1:9")
    try:
        lean_post(session, "http://127.0.0.1:9/x", b"{}", {}, None, (0.5, 0.5), False)
    except requests.RequestException:
        pass
    else:
        raise AssertionError("a refused connection must raise a requests error")


def test_the_adapter_finds_each_pool_once() -> None:
    session = make_session("https://upstream.test")
    adapter = session.get_adapter(URL)
    prep = requests.Request("POST", URL).prepare()
    first = adapter.get_connection_with_tls_context(prep, True, {}, None)
    assert adapter.get_connection_with_tls_context(prep, True, {}, None) is first
    # Other TLS settings or another host get their own pool, as in HTTPAdapter.
    assert adapter.get_connection_with_tls_context(prep, False, {}, None) is not first
    other = requests.Request("POST", "https://other.test/v1").prepare()
    assert adapter.get_connection_with_tls_context(other, True, {}, None).host == "other.test"
    adapter.close()  # session.close(): the next call starts from fresh pools
    again = adapter.get_connection_with_tls_context(prep, True, {}, None)
    assert again is not first and again.pool is not None


def test_pooled_connections_notice_an_upstream_that_hung_up() -> None:
    adapter = make_session("http://127.0.0.1").get_adapter("http://127.0.0.1/")
    pool = adapter.poolmanager.connection_from_url("http://127.0.0.1:1/")
    assert pool.ConnectionCls.__module__ == "app.pooled"  # the gateway's own check is in use
    conn = pool.ConnectionCls("127.0.0.1", 1)
    assert not conn.is_connected  # never connected
    ours, theirs = socket.socketpair()
    conn.sock = ours
    try:
        assert conn.is_connected  # idle and open: fit for the next request
        theirs.sendall(b"stray")
        assert not conn.is_connected  # bytes nobody asked for: not reusable
        ours.recv(16)
        assert conn.is_connected
        theirs.close()
        assert not conn.is_connected  # the upstream closed it: urllib3 opens a new one
    finally:
        ours.close()


def test_a_connection_closed_by_the_upstream_is_replaced() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(5)
        port = server.getsockname()[1]

        def serve_twice() -> None:
            for _ in range(2):  # each connection answers once, then the server hangs up
                conn, _ = server.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(reply)

        thread = threading.Thread(target=serve_twice, daemon=True)
        thread.start()
        session = make_session(f"http://127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}/v1/x"
        for _ in range(2):
            resp = lean_post(session, url, b"{}", {}, None, (2, 2), False)
            assert resp.json() == {}
            time.sleep(0.05)  # let the hang-up arrive before the next call picks the connection
        thread.join(5)
        assert not thread.is_alive()
