"""lean_post must send what session.post sends, follow redirects and run hooks, but keep no cookies."""
from __future__ import annotations

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
