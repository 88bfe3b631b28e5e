"""The one place that builds pooled requests sessions for upstream calls."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies

# gunicorn's gevent worker holds up to worker_connections requests at once (1000 by default);
# every one of them may have an upstream call in flight, so the pool must be that large.
DEFAULT_POOL_SIZE = int(os.environ.get("AI_GATEWAY_POOL_SIZE", "1000"))


@dataclass(frozen=True)
class Timeout:
    """A (connect, read) timeout in seconds; read is the longest silence between bytes."""

    connect: float = 10.0
    read: float = 300.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


def make_session(base_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> requests.Session:
    """A session with a pool sized for a gevent worker and proxies resolved once for base_url."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # requests re-reads the proxy environment on every call when trust_env is on; the upstream
    # host of an endpoint never changes, so resolve HTTP(S)_PROXY / NO_PROXY once here.
    session.proxies.update(get_environ_proxies(base_url) if base_url else {})
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


@lru_cache(maxsize=512)
def _prepared_url(url: str, params: tuple[tuple[str, str], ...]) -> str:
    # An endpoint calls the same few URLs forever; requote and encode each once.
    prep = requests.PreparedRequest()
    prep.prepare_url(url, dict(params) if params else None)
    return prep.url  # type: ignore[return-value]


def lean_post(
    session: requests.Session, url: str, data: bytes, headers: Mapping[str, str],
    params: Mapping[str, str] | None, timeout: tuple[float, float], stream: bool,
) -> requests.Response:
    """`session.post(url, data=..., headers=..., params=...)` without the per-call merge.

    `Session.request` rebuilds a Request and re-merges the session's settings, environment,
    hooks, auth and cookies on every call; on the gateway's hot path that was about a quarter
    of its own CPU time. Here the URL is prepared once per (url, params) and the prepared
    request goes straight to `Session.send`, which still applies hooks, cookies, redirects and
    the mounted adapter (the `HTTPAdapter.send` that `responses` mocks in tests).
    """
    prep = requests.PreparedRequest()
    prep.method = "POST"
    prep.url = _prepared_url(url, tuple(params.items()) if params else ())
    merged = CaseInsensitiveDict(session.headers)
    merged.update(headers)
    merged["Content-Length"] = str(len(data))
    prep.headers = merged
    prep.body = data
    prep.hooks = {"response": list(session.hooks.get("response") or ())}
    jar = RequestsCookieJar()
    if session.cookies:
        jar.update(session.cookies)
        prep.prepare_cookies(jar)
    else:
        prep._cookies = jar  # what prepare_cookies sets, minus building an empty Cookie header
    return session.send(prep, stream=stream, timeout=timeout, verify=session.verify,
                        cert=session.cert, proxies=session.proxies, allow_redirects=True)
