"""Processes under test: the fake upstream, the gateway (real gunicorn), MLflow's gateway; RSS."""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_BIN = os.environ.get("BENCH_MLFLOW", "/tmp/mlflow-venv/bin/mlflow")

# Two cores: the gateway (or MLflow) gets CPU 1 to itself, while the load generator and the
# fake upstream share CPU 0. Direct runs use the same pinning, minus the gateway.
GATEWAY_CPUS = os.environ.get("BENCH_GATEWAY_CPUS", "1")
CLIENT_CPUS = os.environ.get("BENCH_CLIENT_CPUS", "0")
UPSTREAM_CPUS = os.environ.get("BENCH_UPSTREAM_CPUS", "0")
# gevent workers of the gateway and of MLflow's gateway (the goals are set for 2)
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpus: str, argv: list[str]) -> list[str]:
    """argv under `taskset -c cpus`, unpinned when taskset or one of those CPUs is missing."""
    wanted: set[int] = set()
    try:
        for part in cpus.split(","):
            low, _, high = part.partition("-")
            wanted.update(range(int(low), int(high or low) + 1))
    except ValueError:
        wanted = {-1}
    usable = shutil.which("taskset") and wanted <= os.sched_getaffinity(0)
    return (["taskset", "-c", cpus] if usable else []) + argv


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (code {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} in {timeout:.0f} s")


def wait_http(port: int, path: str, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    """Poll GET path until 200 (a listening socket is not yet a ready app)."""
    import http.client

    wait_port(port, proc, what, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {path} in {timeout:.0f} s")


class Proc:
    """A started server process, stopped (with its children) on exit."""

    def __init__(self, name: str, argv: list[str], env: dict | None = None, log_dir: Path = Path("/tmp")) -> None:
        self.name = name
        self.log_path = log_dir / f"bench-{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        self._log.close()

    def log_tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


def start_upstream() -> tuple[Proc, str]:
    port = free_port()
    proc = Proc("upstream", pinned(UPSTREAM_CPUS, [sys.executable, "-m", "bench.upstream", "--port", str(port)]))
    wait_port(port, proc.proc, "fake upstream")
    return proc, f"http://127.0.0.1:{port}"


ENDPOINTS = {"fast": "fake-d0-c5-i0", "slow": "fake-d{slow}-c5-i0", "stream": "fake-d0-c{chunks}-i{interval}"}


def write_config(path: Path, upstream: str, slow: float, chunks: int, interval: float) -> dict[str, str]:
    """The gateway YAML (MLflow's format, read by both gateways); returns endpoint -> model."""
    models = {k: v.format(slow=slow, chunks=chunks, interval=interval) for k, v in ENDPOINTS.items()}
    text = "endpoints:\n" + "".join(textwrap.dedent(f"""\
        - name: {name}
          endpoint_type: llm/v1/chat
          model:
            provider: openai
            name: {model}
            config:
              openai_api_key: bench-not-a-key
              openai_api_base: {upstream}/v1
        """) for name, model in models.items())
    path.write_text(text)
    return models


def start_gateway(config: Path, workers: int = WORKERS) -> tuple[Proc, str]:
    """`ai-gateway start` as the CLI builds it: gunicorn -k gevent, pinned to GATEWAY_CPUS."""
    from app.cli import build_parser, gunicorn_argv

    port = free_port()
    args = build_parser().parse_args(["start", "--host", "127.0.0.1", "--port", str(port),
                                      "--workers", str(workers), "--log-level", "warning"])
    env = {"AI_GATEWAY_CONFIG": str(config), "AI_GATEWAY_POOL_SIZE": str(args.worker_connections),
           "AI_GATEWAY_LOG_LEVEL": "WARNING"}
    proc = Proc("gateway", pinned(GATEWAY_CPUS, gunicorn_argv(args, str(config))), env)
    wait_http(port, "/health", proc.proc, "gateway")
    return proc, f"http://127.0.0.1:{port}"


def mlflow_available() -> bool:
    return os.access(MLFLOW_BIN, os.X_OK)


def start_mlflow(config: Path, workers: int = WORKERS) -> tuple[Proc, str]:
    port = free_port()
    argv = [MLFLOW_BIN, "gateway", "start", "--config-path", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers)]
    proc = Proc("mlflow", pinned(GATEWAY_CPUS, argv))
    wait_http(port, "/health", proc.proc, "mlflow gateway", timeout=120)
    return proc, f"http://127.0.0.1:{port}"


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (from /proc's children lists)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by every process in the tree."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> dict[int, int]:
    """RSS in KiB of every process in the tree (taskset execs in place, so pid is gunicorn)."""
    return {p: rss_kb(p) for p in tree_pids(pid)}


if __name__ == "__main__":  # start the pieces by hand for profiling
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="/tmp/bench-gateway.yaml")
    a = parser.parse_args()
    up, url = start_upstream()
    write_config(Path(a.config), url, 1.0, 50, 0.02)
    print("upstream", url, "config", a.config, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        up.stop()
