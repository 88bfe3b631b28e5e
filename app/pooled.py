"""requests' own urllib3 path, tuned: cached pool lookup and a cheap liveness check."""
from __future__ import annotations

from typing import Mapping

import requests
from requests.adapters import HTTPAdapter
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


def readable_now(sock: object) -> bool:
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
        return self.sock is not None and not readable_now(self.sock)


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
