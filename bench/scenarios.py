"""The benchmark scenarios: run the load generator against each target and summarise."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench import targets
from bench.upstream import expected_text


@dataclass(frozen=True)
class Profile:
    """How big each scenario is; `full` is the documented run, `tiny` the CI smoke."""

    latency_requests: int
    throughput_requests: int
    throughput_concurrency: tuple[int, ...]
    slow_delay: float
    slow_concurrency: tuple[int, ...]
    slow_rounds: int
    stream_concurrency: tuple[int, ...]
    stream_chunks: int
    stream_interval: float
    stream_rounds: int


FULL = Profile(3000, 20000, (32, 128), 1.0, (200, 1000), 3, (100, 500), 50, 0.02, 3)
TINY = Profile(100, 300, (8,), 0.2, (20,), 1, (10,), 5, 0.01, 1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(url: str, body: dict, concurrency: int, requests: int, stream_expect: str | None = None,
         timeout: float = 60.0, require_done: bool = True, ramp: float = 0.0) -> dict:
    """Run the load generator (pinned to the client CPU) and return its figures in ms."""
    argv = targets.pinned(targets.CLIENT_CPUS, [
        sys.executable, "-m", "bench.loadgen", "--url", url, "--body", json.dumps(body),
        "--concurrency", str(concurrency), "--requests", str(requests), "--timeout", str(timeout),
    ] + (["--stream-expect", stream_expect] if stream_expect is not None else [])
      + ([] if require_done else ["--no-done"]) + (["--ramp", str(ramp)] if ramp else []))
    out = subprocess.run(argv, cwd=targets.ROOT, capture_output=True, text=True, check=True)
    raw = json.loads(out.stdout)
    lat = [x * 1000 for x in raw["latency"]]
    ttfb = [x * 1000 for x in raw["ttfb"]]
    total = raw["ok"] + raw["failed"]
    return {
        "requests": total, "ok": raw["ok"], "failed": raw["failed"], "errors": raw["errors"],
        "success": raw["ok"] / total if total else 0.0,
        "rps": raw["ok"] / raw["wall"] if raw["wall"] else 0.0, "wall_s": raw["wall"],
        "p50_ms": percentile(lat, 0.50), "p99_ms": percentile(lat, 0.99),
        "ttfb_p50_ms": percentile(ttfb, 0.50), "ttfb_p99_ms": percentile(ttfb, 0.99),
    }


class PeakRSS:
    """Samples the summed RSS of a process tree in the background; `peak_kb` is the maximum."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.peak_kb = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(targets.tree_rss(self.pid).values()))
            self._stop.wait(self.every)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


class Runner:
    """Holds the upstream and target URLs; each scenario runs direct first, then every gateway."""

    def __init__(self, profile: Profile, upstream: str, gateways: dict[str, tuple[str, int]],
                 models: dict[str, str], log: Any = print) -> None:
        self.p, self.upstream, self.gateways, self.models, self.log = profile, upstream, gateways, models, log

    def _targets(self, endpoint: str, body: dict) -> list[tuple[str, str, dict]]:
        direct = (f"{self.upstream}/v1/chat/completions", {**body, "model": self.models[endpoint]})
        out = [("direct", *direct)]
        for name, (url, _pid) in self.gateways.items():
            out.append((name, f"{url}/endpoints/{endpoint}/invocations", body))
        return out

    def _each(self, endpoint: str, body: dict, concurrency: int, requests: int,
              warmup: int = 0, stream_expect: str | None = None, peak: bool = False,
              ramp: float = 0.0) -> dict:
        results = {}
        for name, url, b in self._targets(endpoint, body):
            # MLflow's gateway ends its streams without `data: [DONE]`; ours must send it.
            done = name != "mlflow"
            if warmup:
                load(url, b, concurrency, warmup, stream_expect, require_done=done, ramp=ramp)
            pid = self.gateways[name][1] if name in self.gateways else None
            cpu = targets.tree_cpu_s(pid) if pid else 0.0
            if peak and pid:
                before = sum(targets.tree_rss(pid).values())
                with PeakRSS(pid) as rss:
                    res = load(url, b, concurrency, requests, stream_expect, require_done=done, ramp=ramp)
                res["rss_before_kb"], res["rss_peak_kb"] = before, rss.peak_kb
            else:
                res = load(url, b, concurrency, requests, stream_expect, require_done=done, ramp=ramp)
            if pid:
                # CPU time per request is the least noisy cost figure on a shared machine.
                res["cpu_ms_per_request"] = (targets.tree_cpu_s(pid) - cpu) * 1000 / max(res["requests"], 1)
            results[name] = res
            self.log(f"  {name:8} c={concurrency:<5} {_line(res)}")
        return results

    def latency(self) -> dict:
        self.log("1. added latency, concurrency 1, upstream delay 0")
        return self._each("fast", CHAT, 1, self.p.latency_requests, warmup=200)

    def throughput(self) -> dict:
        self.log("2. throughput, non-streaming chat, upstream delay 0")
        return {c: self._each("fast", CHAT, c, self.p.throughput_requests, warmup=c * 10)
                for c in self.p.throughput_concurrency}

    def slow(self) -> dict:
        self.log(f"3. slow upstream: {self.p.slow_delay} s before the first byte")
        out = {}
        for c in self.p.slow_concurrency:
            res = self._each("slow", CHAT, c, c * self.p.slow_rounds, warmup=c, peak=True)
            ideal = c / self.p.slow_delay
            for r in res.values():
                r["ideal_rps"], r["share_of_ideal"] = ideal, r["rps"] / ideal
            out[c] = res
        return out

    def streaming(self) -> dict:
        self.log(f"4. streaming: {self.p.stream_chunks} chunks every {self.p.stream_interval * 1000:.0f} ms")
        expect = expected_text(self.p.stream_chunks)
        # Steady state: users start spread over one stream's length and each runs
        # `stream_rounds` streams back to back, so about `c` streams are open at any time.
        ramp = self.p.stream_chunks * self.p.stream_interval
        return {c: self._each("stream", {**CHAT, "stream": True}, c, c * self.p.stream_rounds, warmup=c,
                              stream_expect=expect, peak=True, ramp=ramp)
                for c in self.p.stream_concurrency}

    def stream_burst(self) -> dict:
        """The hard case: the largest number of streams all starting in the same instant."""
        c = max(self.p.stream_concurrency)
        self.log(f"4b. streaming burst: {c} streams starting at once")
        expect = expected_text(self.p.stream_chunks)
        return {c: self._each("stream", {**CHAT, "stream": True}, c, c, warmup=c, stream_expect=expect)}


CHAT = {"messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Say hello to the benchmark."}],
        "temperature": 0.2, "max_tokens": 16}


def _line(r: dict) -> str:
    return (f"ok {r['ok']}/{r['requests']}  {r['rps']:8.1f} req/s  p50 {r['p50_ms']:8.2f} ms  "
            f"p99 {r['p99_ms']:8.2f} ms  ttfb p99 {r['ttfb_p99_ms']:8.2f} ms"
            + (f"  cpu {r['cpu_ms_per_request']:.3f} ms/req" if "cpu_ms_per_request" in r else "")
            + (f"  errors {r['errors']}" if r["errors"] else ""))


def wait_idle(pid: int, seconds: float = 1.0) -> int:
    time.sleep(seconds)
    return sum(targets.tree_rss(pid).values())
