"""Host-local rate-limit counters shared by every worker process of one server (SQLite + flock)."""
from __future__ import annotations

import atexit
import fcntl
import os
import sqlite3
import tempfile
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, TypeVar

from limits.storage import Storage

T = TypeVar("T")

# How long one operation may wait for another process's critical section before giving up
# (the fail policy then applies). Critical sections are one SQLite statement: microseconds.
LOCK_WAIT_SECONDS = 1.0
# The wait polls instead of blocking, so a gevent worker keeps serving its other greenlets.
LOCK_POLL_SECONDS = 0.0005
# Expired rows are swept every this many increments of one process.
SWEEP_EVERY = 512

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters ("
    " key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL)"
)
# One statement: a live window is incremented, an expired or missing one starts over.
_INCR = (
    "INSERT INTO counters (key, count, expires) VALUES (:key, :amount, :expires)"
    " ON CONFLICT (key) DO UPDATE SET"
    "  count = CASE WHEN counters.expires > :now THEN counters.count + :amount ELSE :amount END,"
    "  expires = CASE WHEN counters.expires > :now THEN counters.expires ELSE :expires END"
    " RETURNING count"
)


def server_identity(app_token: str) -> str:
    """Who shares counters: all workers of one gunicorn master, else this one app in this process.

    gunicorn's arbiter exports SERVER_SOFTWARE to its workers; the store opens lazily on the first
    request, which is always inside a worker, so the parent pid names the master.
    """
    if os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
        return f"gunicorn-{os.getppid()}"
    return f"process-{os.getpid()}-{app_token}"


def default_path(app_token: str) -> str:
    folder = os.path.join(tempfile.gettempdir(), f"ai-gateway-limits-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return os.path.join(folder, server_identity(app_token) + ".sqlite3")


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        try:
            os.unlink(path + suffix)
        except OSError:
            pass


class HostLocalStorage(Storage):
    """`local://` (default path per server) or `local:///path/file.sqlite3` (explicit, shared).

    A `limits` storage, so the fixed-window strategy runs on it exactly as on Redis. Every
    operation holds an exclusive flock on `<file>.lock` for one SQLite statement; SQLite's own
    lock is then never contended, so its blocking busy-wait never stalls a gevent worker.
    """

    STORAGE_SCHEME = ["local"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.explicit_path = urllib.parse.urlparse(uri or "").path or None
        self.app_token = str(options.get("app_token") or uuid.uuid4().hex)
        self.path: str | None = None
        self._pid: int | None = None
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._mutex: Any = None
        self._ops = 0

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error, OSError)

    # ----- per-process state (opened lazily: after fork, after gevent's monkey-patching) ------

    def _open(self) -> None:
        if self._pid == os.getpid():
            return
        path = self.explicit_path or default_path(self.app_token)
        if not self.explicit_path and server_identity(self.app_token).startswith("process-"):
            atexit.register(_remove, path)  # nobody else can ever open a per-process file
        lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        db = sqlite3.connect(path, timeout=LOCK_WAIT_SECONDS, isolation_level=None,
                             check_same_thread=False)
        self._mutex = threading.Lock()  # gevent-aware when created after patching
        self.path, self._db, self._lock_fd, self._pid = path, db, lock_fd, os.getpid()
        self._locked(self._init_schema)

    @staticmethod
    def _init_schema(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")  # counters need no durability across a host crash
        db.execute(_SCHEMA)

    def _locked(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        self._open()
        assert self._db is not None and self._lock_fd is not None
        with self._mutex:
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OSError(f"rate-limit store {self.path} stayed locked") from None
                    time.sleep(LOCK_POLL_SECONDS)  # yields to other greenlets under gevent
            try:
                return operation(self._db)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # ----- the limits Storage interface -----------------------------------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()

        def run(db: sqlite3.Connection) -> int:
            row = db.execute(_INCR, {"key": key, "amount": amount, "now": now,
                                     "expires": now + expiry}).fetchone()
            return int(row[0])

        count = self._locked(run)
        self._ops += 1
        if self._ops % SWEEP_EVERY == 0:
            self._locked(lambda db: db.execute("DELETE FROM counters WHERE expires <= ?", (now,)))
        return count

    def get(self, key: str) -> int:
        now = time.time()
        row = self._locked(lambda db: db.execute(
            "SELECT count FROM counters WHERE key = ? AND expires > ?", (key, now)).fetchone())
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = self._locked(lambda db: db.execute(
            "SELECT expires FROM counters WHERE key = ? AND expires > ?", (key, now)).fetchone())
        return float(row[0]) if row else now

    def check(self) -> bool:
        try:
            self._locked(lambda db: db.execute("SELECT 1").fetchone())
        except self.base_exceptions:
            return False
        return True

    def reset(self) -> int | None:
        return self._locked(lambda db: db.execute("DELETE FROM counters").rowcount)

    def clear(self, key: str) -> None:
        self._locked(lambda db: db.execute("DELETE FROM counters WHERE key = ?", (key,)))
