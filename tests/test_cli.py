"""The `ai-gateway` command: validate reports problems; start runs gunicorn with gevent workers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from app import cli
from tests.live import ROOT, free_port

GOOD = "endpoints:\n  - {name: chat, endpoint_type: llm/v1/chat, model: {provider: echo, name: e}}\n"


def test_validate_ok(write_config, capsys):
    assert cli.main(["validate", "--config-path", str(write_config(GOOD))]) == 0
    assert "OK, 1 endpoint(s): chat" in capsys.readouterr().out


def test_validate_lists_every_problem(write_config, capsys):
    bad = GOOD.replace("echo", "nope") + "  - {name: 'a b', endpoint_type: x, model: {provider: echo, name: e}}\n"
    assert cli.main(["validate", "--config-path", str(write_config(bad))]) == 1
    err = capsys.readouterr().err
    assert "invalid config (3 problem(s))" in err
    assert "unknown provider 'nope'" in err and "name: must match" in err and "endpoint_type: must be one of" in err


def test_config_path_from_mlflow_environment(write_config, monkeypatch, capsys):
    for name in ("AI_GATEWAY_CONFIG", "MLFLOW_DEPLOYMENTS_CONFIG", "MLFLOW_GATEWAY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_GATEWAY_CONFIG", str(write_config(GOOD)))
    assert cli.main(["validate"]) == 0
    monkeypatch.delenv("MLFLOW_GATEWAY_CONFIG")
    try:
        cli.main(["validate"])
    except SystemExit as exc:
        assert "No gateway config" in str(exc.code)
    else:
        raise AssertionError("validate without a config should exit")


def test_start_argv_uses_gevent_and_defaults():
    args = cli.build_parser().parse_args(["start"])
    argv = cli.gunicorn_argv(args, "/x.yaml")
    assert argv[argv.index("--worker-class") + 1] == "gevent"
    assert argv[argv.index("--workers") + 1] == "2"
    assert argv[argv.index("--bind") + 1] == "localhost:5000"
    assert argv[-1] == "app:create_app()"


def test_start_refuses_an_invalid_config(write_config):
    proc = subprocess.run([sys.executable, "-m", "app.cli", "start", "--config-path",
                           str(write_config(GOOD.replace("echo", "nope")))], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "unknown provider 'nope'" in proc.stderr


def test_start_serves_and_stops_on_sigterm(write_config):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "start", "--config-path", str(write_config(GOOD)),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "AI_GATEWAY_CONFIG": ""})
    try:
        deadline, ok = time.monotonic() + 20, False
        while time.monotonic() < deadline and not ok:
            try:
                ok = requests.get(f"http://127.0.0.1:{port}/health", timeout=1).json() == {"status": "OK"}
            except requests.RequestException:
                time.sleep(0.1)
        assert ok
        # A closed client connection: an idle keep-alive one would hold the drain open until the
        # keep-alive or graceful timeout ends (gunicorn waits for it), which is not what this tests.
        with requests.Session() as session:
            r = session.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                             json={"model": "chat", "messages": [{"role": "user", "content": "x"}]}, timeout=5)
            assert r.status_code == 200
        del r  # its file object keeps the socket open until it is collected
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert "Using worker: gevent" in out


def test_plain_gunicorn_wsgi_target(write_config):
    """`gunicorn wsgi:app -k gevent` with the config path in the environment, as users deploy it."""
    from tests.live import Gunicorn

    with Gunicorn(write_config(GOOD), workers=1, target="wsgi:app") as gw:
        r = requests.post(gw.url + "/endpoints/chat/invocations",
                          json={"messages": [{"role": "user", "content": "via wsgi"}]}, timeout=5)
        assert r.json()["choices"][0]["message"]["content"] == "via wsgi"
