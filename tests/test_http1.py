"""HTTP/1.1 framing, table-driven: how a reply's body is delimited, and request heads."""
from __future__ import annotations

import io

import pytest
import requests

from app.http1 import framing, read_head, request_head, target_of


@pytest.mark.parametrize("status, method, version, headers, expected", [
    (200, "POST", b"HTTP/1.1", {"Content-Length": "12"}, (12, False, True)),
    (200, "POST", b"HTTP/1.1", {"Content-Length": "12, 12"}, (12, False, True)),
    (200, "POST", b"HTTP/1.1", {"Transfer-Encoding": "chunked"}, (None, True, True)),
    (200, "POST", b"HTTP/1.1", {"Transfer-Encoding": "gzip, chunked", "Content-Length": "3"}, (None, True, True)),
    (200, "POST", b"HTTP/1.1", {"Transfer-Encoding": "gzip"}, (None, False, False)),
    (200, "POST", b"HTTP/1.1", {}, (None, False, False)),                       # to the close
    (200, "POST", b"HTTP/1.1", {"Connection": "close", "Content-Length": "2"}, (2, False, False)),
    (200, "POST", b"HTTP/1.0", {"Content-Length": "2"}, (2, False, False)),
    (200, "POST", b"HTTP/1.0", {"Connection": "keep-alive", "Content-Length": "2"}, (2, False, True)),
    (204, "POST", b"HTTP/1.1", {}, (0, False, True)),
    (304, "GET", b"HTTP/1.1", {"Content-Length": "99"}, (0, False, True)),
    (200, "HEAD", b"HTTP/1.1", {"Content-Length": "99"}, (0, False, True)),
])
def test_framing(status, method, version, headers, expected) -> None:
    assert framing(status, method, version, requests.structures.CaseInsensitiveDict(headers)) == expected


@pytest.mark.parametrize("length", ["-1", "ten", ""])
def test_bad_content_length_is_a_connection_error(length: str) -> None:
    with pytest.raises(requests.ConnectionError):
        framing(200, "POST", b"HTTP/1.1", {"Content-Length": length})


def test_read_head_skips_interim_replies_and_joins_repeated_headers() -> None:
    raw = io.BytesIO(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-A: 1\r\nx-a: 2\r\n"
                     b"Content-Length: 0\r\n\r\n")
    status, reason, headers, version = read_head(raw)
    assert (status, reason, version) == (201, "Created", b"HTTP/1.1")
    assert headers["X-A"] == "1, 2"


def test_request_head_on_the_wire() -> None:
    prep = requests.Request("POST", "http://[::1]:8080/v1/x?a=1", data=b"{}",
                            headers={"Authorization": "Bearer k"}).prepare()
    head = request_head(prep, target_of(prep.url))
    assert head.startswith(b"POST /v1/x?a=1 HTTP/1.1\r\nHost: [::1]:8080\r\n")
    assert b"Authorization: Bearer k\r\n" in head and b"Content-Length: 2\r\n" in head
    assert head.endswith(b"\r\n\r\n")
    assert target_of("https://api.example.com/v1").host_header == "api.example.com"  # default port left out
