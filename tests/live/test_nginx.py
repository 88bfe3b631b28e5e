"""Live: the shipped Nginx template in front of real gunicorn: basic auth, streaming, client IPs."""
from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import requests

from tests.live import ROOT, Gunicorn, free_port

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(
    NGINX is None and not os.environ.get("CI"),
    reason="nginx is not installed (apt-get install -y nginx)",
)
TEMPLATE = ROOT / "deploy" / "nginx" / "ai-gateway.conf.template"
USER, PASSWORD = "alice", "wonder-land-7"

CONFIG = """
endpoints:
  - name: slow
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat, config: {stream_interval: 0.3}}
  - name: perip
    endpoint_type: llm/v1/chat
    model: {provider: echo, name: echo-chat}
    limit: {calls: 1, renewal_period: 30 seconds, key: ip}
"""


def render(values: dict[str, str]) -> str:
    """envsubst restricted to the template's own variables, as the template header says."""
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("${%s}" % name, value)
    assert not re.search(r"\$\{[A-Z_]+\}", text), "a template variable was left unrendered"
    return text


class Nginx:
    """nginx -p <tmp> in the foreground with a main config that includes the rendered template."""

    def __init__(self, prefix: Path, upstream_port: int, htpasswd: Path) -> None:
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        server = render({
            "NGINX_LISTEN": f"127.0.0.1:{self.port}",
            "NGINX_SERVER_NAME": "_",
            "AI_GATEWAY_UPSTREAMS": f"server 127.0.0.1:{upstream_port};",
            "NGINX_HTPASSWD_FILE": str(htpasswd),
        })
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "ai-gateway.conf").write_text(server)
        temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};" for kind in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root the workers would drop to nobody, who cannot read pytest's private tmp dir.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log info;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {prefix}/access.log;\n{temp}\n"
            f"    include {prefix}/ai-gateway.conf;\n}}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        assert NGINX, "nginx is missing"
        conf = str(self.prefix / "nginx.conf")
        check = subprocess.run([NGINX, "-t", "-p", str(self.prefix), "-e", str(self.prefix / "error.log"),
                                "-c", conf], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([NGINX, "-p", str(self.prefix), "-e", str(self.prefix / "error.log"),
                                      "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/health", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start: " + (self.prefix / "error.log").read_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def htpasswd(path: Path) -> Path:
    hashed = subprocess.run(["openssl", "passwd", "-6", PASSWORD], capture_output=True, text=True,
                            check=True).stdout.strip()
    path.write_text(f"{USER}:{hashed}\n")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Two gateways (trusting 1 proxy hop, and trusting none), each behind its own Nginx."""
    tmp = tmp_path_factory.mktemp("nginx")
    config = tmp / "gateway.yaml"
    config.write_text(textwrap.dedent(CONFIG))
    passwords = htpasswd(tmp / "htpasswd")
    keep_alive = ["--keep-alive", "75"]  # longer than Nginx's idle upstream keepalive, as `start` does
    gateways = {
        1: Gunicorn(config, workers=2, env={"AI_GATEWAY_TRUSTED_PROXY_HOPS": "1"}, extra_args=keep_alive),
        0: Gunicorn(config, workers=2, extra_args=keep_alive),
    }
    proxies: dict[int, Nginx] = {}
    try:
        for hops, gateway in gateways.items():
            gateway.start()
            proxies[hops] = Nginx(tmp / f"nginx-{hops}", gateway.port, passwords).start()
        yield proxies
    finally:
        for proxy in proxies.values():
            proxy.stop()
        for gateway in gateways.values():
            gateway.stop()


def test_basic_auth(stack):
    url = stack[1].url
    assert requests.get(url + "/v1/models", timeout=5).status_code == 401
    assert requests.get(url + "/v1/models", auth=(USER, "wrong"), timeout=5).status_code == 401
    ok = requests.get(url + "/v1/models", auth=(USER, PASSWORD), timeout=5)
    assert ok.status_code == 200 and "slow" in {m["id"] for m in ok.json()["data"]}
    assert requests.get(url + "/health", timeout=5).status_code == 200  # probes need no password


def test_stream_chunks_arrive_as_they_are_produced(stack):
    body = {"model": "slow", "stream": True,
            "messages": [{"role": "user", "content": "one two three four five"}]}
    started = time.monotonic()
    arrivals: list[float] = []
    with requests.post(stack[1].url + "/v1/chat/completions", json=body, auth=(USER, PASSWORD),
                       stream=True, timeout=20) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines(chunk_size=1):
            if line.startswith(b"data: ") and b'"content":"' in line.replace(b" ", b""):
                arrivals.append(time.monotonic() - started)
    words = arrivals
    print("word arrival times through nginx (s):", [round(a, 3) for a in words])
    assert len(words) >= 5, arrivals
    # The echo provider waits 0.3 s before each word: buffering would deliver them all at once.
    gaps = [b - a for a, b in zip(words[-5:], words[-4:])]
    assert all(gap > 0.15 for gap in gaps), arrivals
    assert words[-1] - words[-5] > 0.9, arrivals


def post_from(source: str, proxy: Nginx, extra: dict | None = None) -> int:
    """One call to the per-IP endpoint from a given loopback source address (127.0.0.0/8)."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10, source_address=(source, 0))
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    try:
        conn.request("POST", "/endpoints/perip/invocations", body=body, headers={
            "Content-Type": "application/json", "Authorization": f"Basic {token}", **(extra or {})})
        return conn.getresponse().status
    finally:
        conn.close()


def test_per_ip_limits_see_the_client_when_one_hop_is_trusted(stack):
    trusting = stack[1]
    assert post_from("127.0.0.2", trusting) == 200
    assert post_from("127.0.0.2", trusting) == 429
    assert post_from("127.0.0.3", trusting) == 200  # another client: its own counter
    # A forged X-Forwarded-For is kept in front of Nginx's entry, so it buys no fresh counter.
    assert post_from("127.0.0.2", trusting, {"X-Forwarded-For": "198.51.100.9"}) == 429


def test_per_ip_limits_without_trusted_hops_see_only_nginx(stack):
    untrusting = stack[0]
    assert post_from("127.0.0.4", untrusting) == 200
    # Every client arrives from Nginx's address: one shared counter.
    assert post_from("127.0.0.5", untrusting) == 429
    assert post_from("127.0.0.6", untrusting, {"X-Forwarded-For": "198.51.100.10"}) == 429
