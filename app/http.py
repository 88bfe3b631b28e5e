"""The one place that builds pooled requests sessions for upstream calls."""
from __future__ import annotations

import os
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
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
