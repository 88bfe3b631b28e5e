"""Per-endpoint rate limits through the Flask test client, plus the host-local store across processes."""
from __future__ import annotations

import logging
import multiprocessing
import os
import time

import pytest

from app import create_app
from app.cli import main as cli_main
from app.config import parse, parse_settings
from app.errors import ConfigError
from app.limits_settings import LimitSettings, redacted, resolve
from app.limits_store import HostLocalStorage
from tests.live import free_port

LIMITED = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat}
    limit: {calls: %(calls)d, renewal_period: %(period)s%(key)s}
  - name: free
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat}
%(settings)s"""

CHAT = {"messages": [{"role": "user", "content": "hello there"}]}
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")


def config(calls: int = 2, period: str = "minute", key: str | None = None, settings: str = "") -> str:
    return LIMITED % {"calls": calls, "period": period, "key": f", key: '{key}'" if key else "",
                      "settings": settings}


def call(client, route: str, **kwargs):
    if route == "v1":
        return client.post("/v1/chat/completions", json={**CHAT, "model": "chat"}, **kwargs)
    return client.post(f"/{route}/chat/invocations", json=CHAT, **kwargs)


def test_one_counter_per_endpoint_across_every_route(make_app):
    client = make_app(config(calls=3)).test_client()
    answers = [call(client, route) for route in ("endpoints", "gateway", "v1", "endpoints", "v1")]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0", "0"]
    for r in answers:
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert 0 < int(r.headers["X-RateLimit-Reset"]) - time.time() <= 61
        assert 0 <= int(r.headers["Retry-After"]) <= 60
    assert answers[3].get_json() == {"error": "Rate limit exceeded: 3 per minute on endpoint 'chat'."}
    error = answers[4].get_json()["error"]
    assert error["type"] == "rate_limit_exceeded"
    assert error["message"].startswith("Rate limit exceeded: 3 per minute")
    assert int(answers[4].headers["Retry-After"]) >= 1
    # An endpoint without a limit is untouched and carries no limit headers.
    free = client.post("/endpoints/free/invocations", json=CHAT)
    assert free.status_code == 200 and "X-RateLimit-Limit" not in free.headers


def test_a_stream_counts_once_and_carries_the_headers(make_app):
    client = make_app(config(calls=2)).test_client()
    stream = client.post("/v1/chat/completions", json={**CHAT, "model": "chat", "stream": True})
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    body = stream.get_data()
    assert body.count(b"data: ") > 3 and body.endswith(b"data: [DONE]\n\n")
    assert stream.headers["X-RateLimit-Remaining"] == "1"
    assert all(name in stream.headers for name in HEADERS)
    assert call(client, "endpoints").headers["X-RateLimit-Remaining"] == "0"
    assert call(client, "endpoints").status_code == 429


def test_invalid_requests_count_and_get_headers(make_app):
    client = make_app(config(calls=1)).test_client()
    bad = client.post("/endpoints/chat/invocations", json={"messages": "nope"})
    assert bad.status_code == 422 and bad.headers["X-RateLimit-Remaining"] == "0"
    assert call(client, "endpoints").status_code == 429


def test_window_renews(make_app):
    client = make_app(config(calls=1, period="second")).test_client()
    assert call(client, "endpoints").status_code == 200
    assert call(client, "endpoints").status_code == 429
    time.sleep(1.1)
    assert call(client, "endpoints").status_code == 200


def test_per_ip_ignores_forwarded_headers_unless_proxies_are_trusted(make_app):
    client = make_app(config(calls=1, key="ip")).test_client()
    a = {"environ_base": {"REMOTE_ADDR": "10.0.0.1"}}
    b = {"environ_base": {"REMOTE_ADDR": "10.0.0.2"}}
    assert call(client, "endpoints", **a).status_code == 200
    assert call(client, "endpoints", **b).status_code == 200
    # A spoofed X-Forwarded-For does not buy a fresh counter when no proxy is trusted.
    spoof = call(client, "endpoints", headers={"X-Forwarded-For": "1.2.3.4"}, **a)
    assert spoof.status_code == 429
    assert spoof.get_json()["error"].endswith("for this client address.")


def test_per_ip_with_one_trusted_hop_reads_the_last_forwarded_address(make_app):
    client = make_app(config(calls=1, key="ip"), AI_GATEWAY_TRUSTED_PROXY_HOPS=1).test_client()
    proxy = {"environ_base": {"REMOTE_ADDR": "127.0.0.1"}}
    # The proxy appends the address it saw; what the client wrote before it is not trusted.
    first = call(client, "endpoints", headers={"X-Forwarded-For": "9.9.9.9, 203.0.113.5"}, **proxy)
    assert first.status_code == 200
    other = call(client, "endpoints", headers={"X-Forwarded-For": "203.0.113.6"}, **proxy)
    assert other.status_code == 200
    again = call(client, "endpoints", headers={"X-Forwarded-For": "8.8.8.8, 203.0.113.5"}, **proxy)
    assert again.status_code == 429
    # No header at all: the proxy's own address is the client.
    assert call(client, "endpoints", **proxy).status_code == 200
    assert call(client, "endpoints", **proxy).status_code == 429


def test_two_trusted_hops(make_app):
    client = make_app(config(calls=1, key="ip"), AI_GATEWAY_TRUSTED_PROXY_HOPS=2).test_client()
    hdr = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.0.0.9"}
    assert call(client, "endpoints", headers=hdr).status_code == 200
    hdr2 = {"X-Forwarded-For": "7.7.7.7, 198.51.100.7, 10.0.0.8"}
    assert call(client, "endpoints", headers=hdr2).status_code == 429  # same client, other LB node


def test_per_header_value(make_app):
    client = make_app(config(calls=1, key="header:X-Team")).test_client()
    assert call(client, "endpoints", headers={"X-Team": "red"}).status_code == 200
    assert call(client, "v1", headers={"X-Team": "blue"}).status_code == 200
    over = call(client, "gateway", headers={"X-Team": "red"})
    assert over.status_code == 429
    assert over.get_json()["error"].endswith("for this X-Team header value.")
    assert call(client, "endpoints").status_code == 200  # no header: one shared counter
    assert call(client, "endpoints").status_code == 429


def test_reload_keeps_unchanged_limits_and_restarts_changed_ones(make_app, write_config):
    app = make_app(config(calls=2))
    client = app.test_client()
    gateway = app.extensions["ai_gateway"]
    assert call(client, "endpoints").status_code == 200
    # Same limit, other fields changed: the counter carries on.
    write_config(config(calls=2).replace("name: free", "name: free2"))
    assert gateway.check_for_changes()
    assert call(client, "endpoints").headers["X-RateLimit-Remaining"] == "0"
    assert call(client, "endpoints").status_code == 429
    # A new limit is a new counter.
    write_config(config(calls=3))
    assert gateway.check_for_changes()
    assert call(client, "endpoints").headers["X-RateLimit-Remaining"] == "2"


@pytest.mark.parametrize("policy, status", [("open", 200), ("closed", 503)])
def test_unreachable_store_follows_the_policy_quickly(make_app, policy, status):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("ai_gateway").addHandler(handler)
    uri = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    app = make_app(config(calls=1), AI_GATEWAY_LIMITS_STORAGE=uri, AI_GATEWAY_LIMITS_ON_STORAGE_ERROR=policy)
    client = app.test_client()
    for _ in range(3):  # over the limit of 1: the store cannot count, the policy decides
        started = time.monotonic()
        r = call(client, "endpoints")
        assert time.monotonic() - started < 1.5
        assert r.status_code == status
    if policy == "closed":
        body = r.get_json()
        assert "rate-limit store is unavailable" in body["detail"] and r.headers["Retry-After"] == "1"
        v1 = call(client, "v1").get_json()["error"]
        assert v1["type"] == "service_unavailable_error" and v1["code"] == "rate_limit_store_unavailable"
    else:
        assert "X-RateLimit-Limit" not in r.headers
    logging.getLogger("ai_gateway").removeHandler(handler)
    text = "\n".join(r.getMessage() for r in records)
    assert f"unreachable (ConnectionError" in text and f"limits fail {policy}" in text
    assert text.count("unreachable") == 1  # one warning per outage, not one per request
    assert "s3cret-pass" not in text


def test_settings_from_the_config_file(write_config, monkeypatch):
    monkeypatch.setenv("LIMITS_URI", "redis://:pw@redis.internal:6379/2")
    path = write_config(config(settings="settings:\n  limits_storage_uri: $LIMITS_URI\n"
                                        "  limits_on_storage_error: closed\n  trusted_proxy_hops: 1\n"))
    app = create_app(str(path), settings={"AI_GATEWAY_WATCH": False})
    assert app.extensions["ai_gateway_limits"].settings == LimitSettings(
        "redis://:pw@redis.internal:6379/2", "closed", 1)
    # The environment wins over the file, app settings over both.
    monkeypatch.setenv("AI_GATEWAY_TRUSTED_PROXY_HOPS", "2")
    monkeypatch.setenv("AI_GATEWAY_LIMITS_STORAGE", "redis+sentinel://s1:26379,s2:26379/main")
    got = resolve({"AI_GATEWAY_LIMITS_ON_STORAGE_ERROR": "open"},
                  parse_settings(path.read_text()))
    assert got == LimitSettings("redis+sentinel://s1:26379,s2:26379/main", "open", 2)
    assert redacted("redis://:pw@redis.internal:6379/2") == "redis://redis.internal:6379/2"


@pytest.mark.parametrize("settings, message", [
    ("settings:\n  limits_storage_uri: memory://\n", "multiply the limit"),
    ("settings:\n  limits_storage_uri: mongodb://x\n", "unsupported scheme"),
    ("settings:\n  limits_on_storage_error: maybe\n", "'open'"),
    ("settings:\n  trusted_proxy_hops: -1\n", "whole number"),
    ("settings:\n  storage: redis://x\n", "unknown keys"),
    ("settings: [1]\n", "must be a mapping"),
    ("settings:\n  limits_storage_uri: $AI_GATEWAY_TEST_UNSET_URI\n", "AI_GATEWAY_TEST_UNSET_URI is not set"),
])
def test_bad_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError) as info:
        parse(config(settings=settings))
    assert message in str(info.value) and "settings" in str(info.value)


def test_bad_environment_setting_stops_startup(write_config, monkeypatch):
    monkeypatch.setenv("AI_GATEWAY_LIMITS_STORAGE", "memory://")
    with pytest.raises(ConfigError, match="memory://"):
        create_app(str(write_config(config())), settings={"AI_GATEWAY_WATCH": False})


def test_cli_rejects_bad_storage_before_starting(write_config, capsys):
    path = write_config(config())
    with pytest.raises(SystemExit) as info:
        cli_main(["start", "--config-path", str(path), "--limits-storage", "memory://"])
    assert "--limits-storage" in str(info.value.code)


def _hammer(path: str, n: int, out) -> None:
    store = HostLocalStorage(f"local://{path}")
    out.put([store.incr("k", 60) for _ in range(n)])


def test_host_local_store_counts_exactly_across_processes(tmp_path):
    path = str(tmp_path / "limits.sqlite3")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(path, 150, out)) for _ in range(4)]
    for p in procs:
        p.start()
    counts = sorted(c for _ in procs for c in out.get(timeout=60))
    for p in procs:
        p.join(30)
    # Every increment saw a distinct count: no two processes ever read the same value.
    assert counts == list(range(1, 601))
    store = HostLocalStorage(f"local://{path}")
    assert store.get("k") == 600 and 55 < store.get_expiry("k") - time.time() <= 60
    store.clear("k")
    assert store.get("k") == 0 and store.check()


def test_host_local_store_window_expires(tmp_path):
    store = HostLocalStorage(f"local://{tmp_path}/s.sqlite3")
    assert [store.incr("w", 1) for _ in range(3)] == [1, 2, 3]
    time.sleep(1.05)
    assert store.get("w") == 0 and store.incr("w", 1) == 1
    assert store.reset() == 1


def test_default_store_is_per_gunicorn_master(monkeypatch):
    from app.limits_store import server_identity

    monkeypatch.delenv("SERVER_SOFTWARE", raising=False)
    assert server_identity("t") == f"process-{os.getpid()}-t"
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/27.0")
    assert server_identity("t") == f"gunicorn-{os.getppid()}"


def test_a_silent_store_cannot_hang_a_request(make_app):
    """A Redis address that accepts connections and never answers: bounded wait, then the policy."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        uri = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        client = make_app(config(calls=1), AI_GATEWAY_LIMITS_STORAGE=uri,
                          AI_GATEWAY_LIMITS_ON_STORAGE_ERROR="closed").test_client()
        started = time.monotonic()
        assert call(client, "endpoints").status_code == 503
        assert time.monotonic() - started < 2.0
        started = time.monotonic()  # within the back-off second the store is not even tried
        assert call(client, "v1").status_code == 503
        assert time.monotonic() - started < 0.4  # a try would wait out the 0.5 s socket timeout


def test_cli_start_passes_the_limit_settings_to_gunicorn(write_config, monkeypatch):
    import app.cli as cli

    seen: dict = {}

    def fake_execve(path, argv, env):
        seen.update(argv=argv, env=env)
        raise SystemExit(0)

    monkeypatch.setattr(cli.os, "execve", fake_execve)
    path = write_config(config())
    with pytest.raises(SystemExit):
        cli.main(["start", "--config-path", str(path), "--limits-storage", "redis://127.0.0.1:6390/1",
                  "--limits-on-storage-error", "closed", "--trusted-proxy-hops", "2"])
    env = seen["env"]
    assert env["AI_GATEWAY_LIMITS_STORAGE"] == "redis://127.0.0.1:6390/1"
    assert env["AI_GATEWAY_LIMITS_ON_STORAGE_ERROR"] == "closed"
    assert env["AI_GATEWAY_TRUSTED_PROXY_HOPS"] == "2"
    # What the workers will then build from that environment:
    for name in ("AI_GATEWAY_LIMITS_STORAGE", "AI_GATEWAY_LIMITS_ON_STORAGE_ERROR", "AI_GATEWAY_TRUSTED_PROXY_HOPS"):
        monkeypatch.setenv(name, env[name])
    assert resolve({}, {}) == LimitSettings("redis://127.0.0.1:6390/1", "closed", 2)
