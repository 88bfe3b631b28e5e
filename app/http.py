"""The one place that builds pooled requests sessions for upstream calls."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from http.cookiejar import DefaultCookiePolicy
from typing import Mapping

import requests
from requests.cookies import RequestsCookieJar
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies

from app.transport import LeanAdapter

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
    adapter = LeanAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # requests re-reads the proxy environment on every call when trust_env is on; the upstream
    # host of an endpoint never changes, so resolve HTTP(S)_PROXY / NO_PROXY once here.
    session.proxies.update(get_environ_proxies(base_url) if base_url else {})
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    # One session serves every tenant of an endpoint: a Set-Cookie from the upstream on one
    # user's call must not ride on another user's call, so the session keeps no cookies.
    session.cookies = RequestsCookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
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
    hooks, auth and cookies on every call, and `Session.send` then extracts cookies and looks
    for redirects; on the gateway's hot path that was about a third of its own CPU time. Here
    the URL is prepared once per (url, params) and the prepared request goes straight to the
    mounted adapter's `send` (`LeanAdapter`, which defers to a patched `HTTPAdapter.send`). Response
    hooks still run and redirects are still followed (through `Session.resolve_redirects`, only
    when the reply is one). Cookies are never kept between calls: a Set-Cookie is sent on the
    later hops of the same call's redirects, never on another call.
    """
    prep = requests.PreparedRequest()
    prep.method = "POST"
    prep.url = _prepared_url(url, tuple(params.items()) if params else ())
    prep.headers = _merged_headers(session.headers, headers, len(data))
    prep.body = data
    hooks = session.hooks.get("response")
    prep.hooks = {"response": list(hooks) if hooks else []}
    kwargs = {"stream": stream, "timeout": timeout, "verify": session.verify,
              "cert": session.cert, "proxies": session.proxies}
    resp = session.get_adapter(prep.url).send(prep, **kwargs)
    if hooks:
        resp = dispatch_hook("response", prep.hooks, resp, **kwargs)
    if resp.is_redirect:
        prep._cookies = RequestsCookieJar()  # this call's own jar, used across its hops only
        history = list(session.resolve_redirects(resp, prep, **kwargs))
        if history:
            history.insert(0, resp)
            resp = history.pop()
            resp.history = history
    if not stream:
        resp.content  # as Session.send does: read the body now, so the connection goes back
    return resp


def _merged_headers(base: Mapping[str, str], extra: Mapping[str, str], length: int) -> CaseInsensitiveDict:
    """The session's headers updated with this call's and its Content-Length.

    Built on a copy of the session dict's store (a C-speed dict copy) instead of
    re-inserting every session header through CaseInsensitiveDict's Python methods.
    """
    merged: CaseInsensitiveDict = CaseInsensitiveDict()
    store = (dict(base._store) if isinstance(base, CaseInsensitiveDict)  # type: ignore[attr-defined]
             else {name.lower(): (name, value) for name, value in base.items()})
    for name, value in extra.items():
        store[name.lower()] = (name, value)
    store["content-length"] = ("Content-Length", str(length))
    merged._store = store  # type: ignore[attr-defined]
    return merged
