"""The live endpoint table: one provider object per endpoint, swapped atomically on reload."""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Callable

from app import config as config_mod
from app import registry
from app.config import Endpoint
from app.errors import ConfigError
from app.http import DEFAULT_POOL_SIZE, make_session
from app.providers.base import BaseProvider

log = logging.getLogger("ai_gateway")


@dataclass(frozen=True)
class Live:
    """An endpoint as it serves: its validated config and its provider object."""

    endpoint: Endpoint
    provider: BaseProvider


def build_provider(endpoint: Endpoint, pool_size: int = DEFAULT_POOL_SIZE) -> BaseProvider:
    cls = registry.get(endpoint.provider)
    assert cls is not None  # config load already rejected unknown providers
    session = make_session(cls.base_url(endpoint.config), pool_size)
    return cls(
        endpoint.model, endpoint.config, session=session, timeout=endpoint.timeout,
        endpoint_type=endpoint.endpoint_type,
    )


class Gateway:
    """Endpoints by name. Readers take one dict reference per request, so a reload never tears."""

    def __init__(
        self, endpoints: list[Endpoint], *, path: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        self.path = path
        self.pool_size = pool_size
        self.listeners: list[Callable[[dict[str, Live], dict[str, Live]], None]] = []
        self._table: dict[str, Live] = {}
        self._stamp = self._file_stamp()
        self._text: str | None = self._read() if path else None
        self._bad_stamp: object = None
        self._apply(endpoints)
        self._stop = threading.Event()

    @classmethod
    def from_file(cls, path: str, **kwargs: object) -> "Gateway":
        return cls(config_mod.load(path), path=path, **kwargs)  # type: ignore[arg-type]

    # ----- reading ---------------------------------------------------------------------------

    def get(self, name: str) -> Live | None:
        return self._table.get(name)

    def all(self) -> list[Live]:
        return list(self._table.values())

    @property
    def table(self) -> dict[str, Live]:
        """The current table; a reload swaps in a new dict, so it also serves as a cache key."""
        return self._table

    # ----- reloading -------------------------------------------------------------------------

    def secrets(self) -> set[str]:
        """Every secret value the live endpoints hold (for the log filter)."""
        return {value for live in self._table.values() for value in live.provider.secret_values()}

    def _apply(self, endpoints: list[Endpoint]) -> None:
        old = self._table
        new: dict[str, Live] = {}
        for endpoint in endpoints:
            previous = old.get(endpoint.name)
            if previous is not None and previous.endpoint.same_provider_as(endpoint):
                # Same upstream settings: keep the provider and its pooled connections.
                new[endpoint.name] = Live(endpoint, previous.provider)
            else:
                new[endpoint.name] = Live(endpoint, build_provider(endpoint, self.pool_size))
        self._table = new
        for listener in self.listeners:
            listener(old, new)

    def _file_stamp(self) -> tuple | None:
        if not self.path:
            return None
        try:
            st = os.stat(self.path)  # follows symlinks, so a swapped link target shows up
        except OSError:
            return None
        return (os.path.realpath(self.path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as handle:  # type: ignore[arg-type]
                return handle.read()
        except OSError:
            return None

    def check_for_changes(self) -> bool:
        """Reload if the file changed; an invalid or missing file keeps the last good config."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        if stamp is None:
            if self._bad_stamp != "missing":
                log.warning("Config file %s is gone; the last good config keeps serving.", self.path)
                self._bad_stamp = "missing"
            return False
        text = self._read()
        if text is None or text == self._text:
            self._stamp = stamp
            return False
        try:
            endpoints = config_mod.parse(text, self.path or "<config>")
            self._apply(endpoints)
        except ConfigError as exc:
            if self._bad_stamp != stamp:
                log.error(
                    "Config reload rejected; the last good config keeps serving:\n  %s",
                    "\n  ".join(exc.problems),
                )
                self._bad_stamp = stamp
            return False
        except Exception:  # a provider constructor failing must not kill the watcher
            log.exception("Config reload failed; the last good config keeps serving.")
            self._bad_stamp = stamp
            return False
        self._stamp, self._text, self._bad_stamp = stamp, text, None
        log.info("Config reloaded from %s: %d endpoints.", self.path, len(self._table))
        return True

    def watch(self, interval: float = 0.5) -> None:
        """Poll the file in a daemon thread (a greenlet under gevent's monkey-patching)."""
        if not self.path:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.check_for_changes()
                except Exception:
                    log.exception("Config watcher error; retrying.")

        threading.Thread(target=loop, name="config-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
