"""Live: two gateway instances (two gevent workers each) share exact limits through a real Redis."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.live import Gunicorn, free_port

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS is None and not os.environ.get("CI"),
    reason="redis-server is not installed (apt-get install -y redis-server)",
)

CONFIG = """
endpoints:
  - name: burst
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat}
    limit: {calls: 25, renewal_period: 30 seconds}
  - name: outage
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat}
    limit: {calls: 2, renewal_period: 30 seconds}
"""
CHAT = {"messages": [{"role": "user", "content": "ping"}]}


class RedisServer:
    """`redis-server` on 127.0.0.1 and a free port, without persistence; stoppable and restartable."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        assert REDIS, "redis-server is missing"
        self.proc = subprocess.Popen(
            [REDIS, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        import redis

        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Redis plus two instances: one failing open, one failing closed when Redis is gone."""
    workdir = tmp_path_factory.mktemp("redis")
    config = workdir / "gateway.yaml"
    config.write_text(textwrap.dedent(CONFIG))
    redis_server = RedisServer(workdir).start()
    uri = f"redis://127.0.0.1:{redis_server.port}/0"
    servers = [
        Gunicorn(config, workers=2, env={"AI_GATEWAY_LIMITS_STORAGE": uri,
                                          "AI_GATEWAY_LIMITS_ON_STORAGE_ERROR": policy})
        for policy in ("open", "closed")
    ]
    try:
        for server in servers:
            server.start()
        yield redis_server, servers
    finally:
        for server in servers:
            server.stop()
        redis_server.stop()


def post(url: str, endpoint: str, timeout: float = 10) -> requests.Response:
    return requests.post(f"{url}/endpoints/{endpoint}/invocations", json=CHAT, timeout=timeout)


def test_two_instances_admit_exactly_the_limit(stack):
    _, servers = stack
    targets = [s.url for s in servers] * 50  # 100 calls, alternating instances

    def one(url: str) -> int:
        return post(url, "burst").status_code

    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(one, targets))
    assert statuses.count(200) == 25, statuses
    assert statuses.count(429) == 75
    # Both instances see the same spent counter.
    for server in servers:
        r = post(server.url, "burst")
        assert r.status_code == 429 and r.headers["X-RateLimit-Remaining"] == "0"
        assert r.json()["error"].startswith("Rate limit exceeded: 25 per 30 seconds")


def test_redis_outage_follows_the_policy_and_recovers(stack):
    redis_server, (fail_open, fail_closed) = stack
    assert post(fail_open.url, "outage").status_code == 200
    assert post(fail_closed.url, "outage").status_code == 200
    assert post(fail_open.url, "outage").status_code == 429
    redis_server.stop()
    try:
        for _ in range(4):
            started = time.monotonic()
            opened, closed = post(fail_open.url, "outage", 5), post(fail_closed.url, "outage", 5)
            assert time.monotonic() - started < 3.0, "a request hung on the dead store"  # 0.5 s socket timeouts
            assert opened.status_code == 200  # admitted while the store cannot count
            assert closed.status_code == 503
            assert "rate-limit store is unavailable" in closed.json()["detail"]
            assert closed.headers["Retry-After"] == "1"
    finally:
        redis_server.start()  # same port: the instances must reconnect by themselves
    deadline = time.monotonic() + 10
    statuses: list[int] = []
    while time.monotonic() < deadline:
        statuses = [post(fail_closed.url, "outage").status_code]
        if statuses == [200]:
            break
        time.sleep(0.2)
    assert statuses == [200], "the fail-closed instance did not recover"
    time.sleep(1.2)  # let every worker's one-second back-off after its last failure run out
    # Redis came back empty: counting starts over and is enforced again on both instances.
    assert post(fail_open.url, "outage").status_code == 200
    assert post(fail_open.url, "outage").status_code == 429
    assert post(fail_closed.url, "outage").status_code == 429
    log = fail_open.log()
    assert "Rate-limit store redis://127.0.0.1" in log and "limits fail open until it returns" in log
    # Each worker that logged the outage logs the recovery on its next call; the kernel decides
    # which worker takes a connection, so keep calling (bounded) until every one of them has.
    outage_pids = set(re.findall(r"\[(\d+)\] WARNING Rate-limit store \S+ is unreachable", log))
    assert outage_pids
    for _ in range(100):
        if outage_pids <= set(re.findall(r"\[(\d+)\] WARNING Rate-limit store \S+ is reachable again", log)):
            break
        assert post(fail_open.url, "outage").status_code == 429
        log = fail_open.log()
    recovered = set(re.findall(r"\[(\d+)\] WARNING Rate-limit store \S+ is reachable again", log))
    assert outage_pids <= recovered, log
