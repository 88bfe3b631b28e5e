"""The one place that builds pooled requests sessions for upstream calls."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from http.cookiejar import DefaultCookiePolicy
from typing import Mapping

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

try:
    # gevent's monkey patching swaps select.poll for a poll scheduled on its hub (watchers, a
    # greenlet switch); a zero-timeout look at one socket never blocks, so the real syscall
    # serves it without any of that.
    from gevent.monkey import get_original

    _poll = get_original("select", "poll")
except ImportError:  # pragma: no cover - gevent is a dependency; plain select then
    from select import poll as _poll
from select import POLLIN, POLLPRI

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


def _readable_now(sock: object) -> bool:
    poller = _poll()
    poller.register(sock, POLLIN | POLLPRI)
    return bool(poller.poll(0))


class _QuickCheck:
    """urllib3's liveness check of a pooled connection, without gevent's hub-scheduled poll.

    Before reusing a pooled connection urllib3 asks `is_connected`: a socket readable while
    idle has been closed by the upstream (or sent stray bytes) and must not carry a request.
    Same test as urllib3's `wait_for_read(sock, timeout=0)`; it ran on every upstream call
    and cost about 5 % of a gevent worker's CPU.
    """

    sock: object

    @property
    def is_connected(self) -> bool:
        return self.sock is not None and not _readable_now(self.sock)


class _HTTPConnection(_QuickCheck, HTTPConnection):
    pass


class _HTTPSConnection(_QuickCheck, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class PooledAdapter(HTTPAdapter):
    """`HTTPAdapter` that remembers which connection pool serves each URL.

    requests looks the pool up on every call (parse the URL, build the TLS key attributes,
    key the pool manager under its lock): about 4 % of a worker's CPU. An endpoint calls the
    same few URLs with the same TLS settings forever, so the pool is found once per
    (url, verify, cert, proxies); `close()` forgets them. `send` is HTTPAdapter's own.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._pools: dict[tuple, HTTPConnectionPool] = {}

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: bool | str | None,
        proxies: Mapping[str, str] | None = None, cert: str | tuple[str, str] | None = None,
    ) -> HTTPConnectionPool:
        key = (request.url, verify, cert, tuple(proxies.items()) if proxies else ())
        pool = self._pools.get(key)
        if pool is None:
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)  # type: ignore[arg-type]
            if len(self._pools) >= 256:  # bounded like the manager's own map (whose evicted
                self._pools.clear()      # pools also stay usable by whoever holds them)
            self._pools[key] = pool
        return pool

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def close(self) -> None:
        self._pools.clear()
        super().close()


def make_session(base_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> requests.Session:
    """A session with a pool sized for a gevent worker and proxies resolved once for base_url."""
    session = requests.Session()
    adapter = PooledAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
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
    mounted adapter's `send` (the `HTTPAdapter.send` that `responses` mocks in tests). Response
    hooks still run and redirects are still followed (through `Session.resolve_redirects`, only
    when the reply is one). Cookies are never kept between calls: a Set-Cookie is sent on the
    later hops of the same call's redirects, never on another call.
    """
    prep = requests.PreparedRequest()
    prep.method = "POST"
    prep.url = _prepared_url(url, tuple(params.items()) if params else ())
    merged = CaseInsensitiveDict(session.headers)
    merged.update(headers)
    merged["Content-Length"] = str(len(data))
    prep.headers = merged
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
