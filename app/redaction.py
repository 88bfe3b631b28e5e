"""A logging filter that scrubs every configured secret from the gateway's log records."""
from __future__ import annotations

import logging
import traceback


class SecretFilter(logging.Filter):
    """Replace known secret values in a record's message and traceback with [redacted]."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()
        self._sources: dict[int, set[str]] = {}

    def update(self, source: object, secrets: set[str]) -> None:
        """Set the secrets one gateway holds (several apps may share a process, as in tests)."""
        self._sources[id(source)] = set(secrets)
        merged = set().union(*self._sources.values())
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = tuple(sorted((s for s in merged if len(s) >= 4), key=len, reverse=True))

    @classmethod
    def on(cls, logger: logging.Logger) -> "SecretFilter":
        """The filter installed on logger, installing one if there is none yet."""
        for existing in logger.filters:
            if isinstance(existing, cls):
                return existing
        created = cls()
        logger.addFilter(created)
        return created

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg, record.args = self._scrub(record.getMessage()), ()
            if record.exc_info and not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            if record.exc_text:
                record.exc_text = self._scrub(record.exc_text)
        return True
