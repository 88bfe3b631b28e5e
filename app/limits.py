"""Per-endpoint rate limits: one fixed-window counter per endpoint (or per client) on a shared store.

Every route that reaches an endpoint goes through `enforce(endpoint)` in `dispatch.invoke`, so the
MLflow routes and `/v1` share one counter per endpoint and a stream counts once. Counter keys are
built from the endpoint name and its limit, so a hot reload that leaves a limit alone keeps its
counter, and a changed limit starts a fresh one.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, request
from limits import (
    RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute,
    RateLimitItemPerMonth, RateLimitItemPerSecond, RateLimitItemPerYear,
)
from limits.storage import Storage, storage_from_string

from app import config as config_mod
from app import limits_store  # noqa: F401  (registers the local:// scheme with `limits`)
from app.config import PERIOD_RE, Endpoint, Limit
from app.errors import GatewayError, RateLimited
from app.limits_settings import LimitSettings, redacted, resolve

log = logging.getLogger("ai_gateway")

EXTENSION = "ai_gateway_limits"
_UNITS: dict[str, type[RateLimitItem]] = {
    "second": RateLimitItemPerSecond, "minute": RateLimitItemPerMinute, "hour": RateLimitItemPerHour,
    "day": RateLimitItemPerDay, "month": RateLimitItemPerMonth, "year": RateLimitItemPerYear,
}
# A request must never hang on the store: short socket timeouts, one immediate retry (which
# replaces a pooled connection that died with a restarted Redis), then the failure policy.
SOCKET_TIMEOUT = 0.5
CONNECT_TIMEOUT = 0.3
# After a store failure, requests skip the store for this long (the policy applies at once),
# then the next request tries it again: recovery needs no restart.
RETRY_AFTER_FAILURE = 1.0


def rate_item(limit: Limit) -> RateLimitItem:
    match = PERIOD_RE.match(limit.renewal_period)
    assert match is not None  # validated at config load
    return _UNITS[match.group("unit")](limit.calls, int(match.group("n") or 1))


def client_ip(trusted_hops: int) -> str:
    """The client address, read from X-Forwarded-For only as far as `trusted_hops` proxies vouch.

    Each trusted proxy appends the address it saw; the Nth entry from the right was written by
    the outermost trusted proxy. With fewer entries than trusted hops the header is not ours.
    """
    remote = request.remote_addr or "unknown"
    if trusted_hops <= 0:
        return remote
    values = [v.strip() for h in request.headers.getlist("X-Forwarded-For") for v in h.split(",")]
    values = [v for v in values if v]
    return values[-trusted_hops] if len(values) >= trusted_hops else remote


def _digest(value: str) -> str:
    # Header values may be credentials: counters store a digest, never the value.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Window:
    """The state of one counter after a hit."""

    limit: int
    remaining: int
    reset: float  # epoch seconds when the window renews

    def headers(self) -> dict[str, str]:
        wait = max(0, math.ceil(self.reset - time.time()))
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset)),
            "Retry-After": str(wait if self.remaining else max(1, wait)),
        }


class EndpointLimits:
    """The limiter of one app: settings, a lazily opened store per process, the failure policy."""

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings
        self.app_token = uuid.uuid4().hex
        self._pid: int | None = None
        self._store: Storage | None = None
        self._down_until = 0.0
        self._down = False

    def _options(self) -> dict[str, Any]:
        uri = self.settings.storage_uri
        if uri is None or uri.startswith("local:"):
            return {"app_token": self.app_token}
        timeouts: dict[str, Any] = {"socket_timeout": SOCKET_TIMEOUT,
                                    "socket_connect_timeout": CONNECT_TIMEOUT}
        if "+cluster" in uri:
            return timeouts
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options: dict[str, Any] = {**timeouts, "retry": Retry(NoBackoff(), 1)}
        if "+sentinel" in uri:
            # Asking each sentinel for the master must not retry with back-off either.
            options["sentinel_kwargs"] = {**timeouts, "retry": Retry(NoBackoff(), 0)}
        return options

    def store(self) -> Storage:
        """This process's store (built after fork: connections and locks are per process)."""
        if self._pid != os.getpid() or self._store is None:
            self._store = storage_from_string(self.settings.storage_uri or "local://", **self._options())
            self._pid = os.getpid()
        return self._store

    def partition(self, endpoint: Endpoint) -> str:
        key = endpoint.limit.key if endpoint.limit else None
        if key is None:
            return "all"
        if key == "ip":
            return "ip:" + client_ip(self.settings.trusted_proxy_hops)
        header = key.split(":", 1)[1]
        return f"header:{header.lower()}:" + _digest(request.headers.get(header, ""))

    def hit(self, endpoint: Endpoint) -> Window | None:
        """Count one call; None when the store is down and the policy admits the call."""
        assert endpoint.limit is not None
        item = rate_item(endpoint.limit)
        identifiers = ("ai-gateway", endpoint.name, endpoint.limit.key or "total", self.partition(endpoint))
        if time.monotonic() < self._down_until:
            return self._store_failed(None)
        key = item.key_for(*identifiers)
        try:
            store = self.store()
            # The fixed-window strategy's hit (`incr(...) <= amount`), keeping the count for
            # the headers: one atomic increment, then the window's end.
            count = store.incr(key, item.get_expiry())
            reset = store.get_expiry(key)
        except Exception as exc:  # every store error (Redis, SQLite, a failed connect) is policy
            return self._store_failed(exc)
        if self._down:
            self._down = False
            log.warning("Rate-limit store %s is reachable again.", redacted(self.settings.storage_uri))
        window = Window(item.amount, max(0, item.amount - count), reset)
        if count > item.amount:
            raise RateLimited(_exceeded(endpoint), code="rate_limit_exceeded", headers=window.headers())
        return window

    def _store_failed(self, exc: Exception | None) -> None:
        if exc is not None:
            self._down_until = time.monotonic() + RETRY_AFTER_FAILURE
            self._store = None  # rebuilt on the next try (a Cluster or Sentinel may have moved)
            if not self._down:
                self._down = True
                log.warning(
                    "Rate-limit store %s is unreachable (%s: %s); limits fail %s until it returns.",
                    redacted(self.settings.storage_uri), type(exc).__name__, _safe(exc),
                    self.settings.on_storage_error,
                )
        if self.settings.on_storage_error == "closed":
            raise GatewayError(
                "The rate-limit store is unavailable, so this gateway refuses limited calls "
                "for now (limits_on_storage_error: closed). Retry shortly.",
                status=503, type="service_unavailable_error", code="rate_limit_store_unavailable",
                headers={"Retry-After": str(math.ceil(RETRY_AFTER_FAILURE))},
            )
        return None


def _safe(exc: Exception) -> str:
    # Redis errors can quote the URL they tried; keep credentials out of the log.
    text = str(exc)
    return text.split("@", 1)[-1] if "@" in text else text


def _exceeded(endpoint: Endpoint) -> str:
    limit = endpoint.limit
    assert limit is not None
    who = ""
    if limit.key == "ip":
        who = " for this client address"
    elif limit.key:
        who = f" for this {limit.key.split(':', 1)[1]} header value"
    return f"Rate limit exceeded: {limit.calls} per {limit.renewal_period} on endpoint {endpoint.name!r}{who}."


def enforce(endpoint: Endpoint) -> None:
    """Count a call to `endpoint` in the current request; raise RateLimited past its limit."""
    limiter: EndpointLimits | None = current_app.extensions.get(EXTENSION)
    if limiter is None or endpoint.limit is None:
        return
    window = limiter.hit(endpoint)
    if window is not None:
        g.ai_gateway_limit_headers = window.headers()


def _add_headers(response: Response) -> Response:
    headers = g.pop("ai_gateway_limit_headers", None)
    if headers:
        response.headers.update(headers)
    return response


def init_app(app: Flask, config_path: str | None) -> EndpointLimits:
    """Resolve the settings (app > environment > config file) and install the limiter."""
    file_settings = config_mod.load_settings(config_path) if config_path else {}
    try:
        settings = resolve(app.config, file_settings)
    except ValueError as exc:
        raise config_mod.ConfigError(f"rate-limit settings: {exc}") from None
    limiter = EndpointLimits(settings)
    app.extensions[EXTENSION] = limiter
    app.after_request(_add_headers)
    log.debug("Rate limits use %s, failing %s.", redacted(settings.storage_uri), settings.on_storage_error)
    return limiter
