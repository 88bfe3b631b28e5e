"""Turn raw scenario figures into same-run comparisons, goal checks and a Markdown report."""
from __future__ import annotations

from typing import Any


def _gw(res: dict, name: str = "gateway") -> dict | None:
    return res.get(name)


def summarise(f: dict) -> dict:
    """Added latency, ratios against direct (and MLflow), and the goal checks."""
    s: dict[str, Any] = {"goals": {}}
    goals = s["goals"]
    if "latency" in f:
        d, g = f["latency"]["direct"], f["latency"]["gateway"]
        s["added_p50_ms"] = g["p50_ms"] - d["p50_ms"]
        s["added_p99_ms"] = g["p99_ms"] - d["p99_ms"]
        s["latency_ratio_p50"] = g["p50_ms"] / d["p50_ms"]
        goals["added latency p50 < 0.4 ms"] = s["added_p50_ms"] < 0.4
    if "throughput" in f:
        s["throughput"] = {}
        for c, res in f["throughput"].items():
            row = {"gateway_rps": res["gateway"]["rps"], "direct_rps": res["direct"]["rps"],
                   "ratio_to_direct": res["gateway"]["rps"] / res["direct"]["rps"]}
            if "mlflow" in res:
                row["mlflow_rps"] = res["mlflow"]["rps"]
                row["ratio_to_mlflow"] = res["gateway"]["rps"] / max(res["mlflow"]["rps"], 1e-9)
            s["throughput"][c] = row
        first = min(f["throughput"], key=int)
        if "ratio_to_mlflow" in s["throughput"][first] and int(first) == 32:
            goals["throughput c=32 >= 2.5x MLflow"] = s["throughput"][first]["ratio_to_mlflow"] >= 2.5
    if "slow" in f:
        top = max(f["slow"], key=int)
        g = f["slow"][top]["gateway"]
        s["slow"] = {c: {n: {"success": r["success"], "share_of_ideal": r["share_of_ideal"], "p99_ms": r["p99_ms"]}
                         for n, r in res.items()} for c, res in f["slow"].items()}
        goals[f"{top} slow requests: 100% succeed"] = g["success"] == 1.0
        goals[f"{top} slow requests: >= 90% of ideal throughput"] = g["share_of_ideal"] >= 0.9
    if "streaming" in f:
        top = max(f["streaming"], key=int)
        res = f["streaming"][top]
        g, d = res["gateway"], res["direct"]
        s["stream_added_ttfb_p99_ms"] = g["ttfb_p99_ms"] - d["ttfb_p99_ms"]
        # Against the fresh gateway's idle RSS, not the RSS just before this run: the warm-up
        # and the earlier scenarios already grew the heap, so this errs on the high side.
        base = f["idle_rss_kb"]["total"] if "idle_rss_kb" in f else g["rss_before_kb"]
        s["stream_kb_per_open_stream"] = max(0, g["rss_peak_kb"] - base) / int(top)
        goals[f"{top} streams: 100% complete intact"] = g["success"] == 1.0
        goals[f"{top} streams: added TTFB p99 < 20 ms"] = s["stream_added_ttfb_p99_ms"] < 20
        goals["memory: < 100 KB per open stream"] = s["stream_kb_per_open_stream"] < 100
    if "idle_rss_kb" in f:
        workers = f["idle_rss_kb"]["per_process"][1:] or f["idle_rss_kb"]["per_process"]
        s["idle_worker_mb"] = max(workers) / 1024
        goals["memory: < 80 MB per idle worker"] = s["idle_worker_mb"] < 80
    return s


def _ms(x: float) -> str:
    return f"{x:.2f}"


def render(f: dict) -> str:
    """A Markdown report of one run (the same tables docs/benchmarks.md shows)."""
    s, out = f["summary"], []
    m = f["machine"]
    out.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}; "
               f"gateway on CPU {m['pinning']['gateway']}, load generator on CPU "
               f"{m['pinning']['load_generator']}, upstream on CPU {m['pinning']['upstream']}.\n")
    names = lambda res: list(res)  # noqa: E731
    if "latency" in f:
        out.append("### 1. Latency, concurrency 1, upstream delay 0\n")
        out.append("| target | p50 ms | p99 ms | CPU ms/req |\n|---|---|---|---|")
        for n, r in f["latency"].items():
            cpu = f"{r['cpu_ms_per_request']:.2f}" if "cpu_ms_per_request" in r else "-"
            out.append(f"| {n} | {_ms(r['p50_ms'])} | {_ms(r['p99_ms'])} | {cpu} |")
        out.append(f"\nGateway added: p50 {s['added_p50_ms']:.3f} ms, p99 {s['added_p99_ms']:.3f} ms "
                   f"(ratio p50 {s['latency_ratio_p50']:.2f}x direct).\n")
    if "throughput" in f:
        out.append("### 2. Throughput, non-streaming chat, upstream delay 0\n")
        out.append("| concurrency | target | req/s | p50 ms | p99 ms | ok | CPU ms/req |\n|---|---|---|---|---|---|---|")
        for c, res in f["throughput"].items():
            for n in names(res):
                r = res[n]
                cpu = f"{r['cpu_ms_per_request']:.2f}" if "cpu_ms_per_request" in r else "-"
                out.append(f"| {c} | {n} | {r['rps']:.0f} | {_ms(r['p50_ms'])} | {_ms(r['p99_ms'])} | {r['ok']}/{r['requests']} | {cpu} |")
        for c, row in s["throughput"].items():
            extra = f", {row['ratio_to_mlflow']:.2f}x MLflow" if "ratio_to_mlflow" in row else ""
            out.append(f"\nc={c}: gateway {row['ratio_to_direct']:.2f}x direct{extra}.")
        out.append("")
    if "slow" in f:
        out.append("### 3. Slow upstream (delay before the first byte)\n")
        out.append("| concurrency | target | ok | share of ideal req/s | p99 ms | peak RSS MiB |\n|---|---|---|---|---|---|")
        for c, res in f["slow"].items():
            for n, r in res.items():
                peak = f"{r['rss_peak_kb'] / 1024:.1f}" if "rss_peak_kb" in r else "-"
                out.append(f"| {c} | {n} | {r['ok']}/{r['requests']} | {r['share_of_ideal'] * 100:.1f}% | {_ms(r['p99_ms'])} | {peak} |")
        out.append("")
    if "streaming" in f:
        out.append("### 4. Streaming\n")
        out.append("| streams | target | complete intact | TTFB p50 ms | TTFB p99 ms | total p50 ms | total p99 ms | peak RSS MiB |\n|---|---|---|---|---|---|---|---|")
        for c, res in f["streaming"].items():
            for n, r in res.items():
                peak = f"{r['rss_peak_kb'] / 1024:.1f}" if "rss_peak_kb" in r else "-"
                out.append(f"| {c} | {n} | {r['ok']}/{r['requests']} | {_ms(r['ttfb_p50_ms'])} | {_ms(r['ttfb_p99_ms'])} | "
                           f"{_ms(r['p50_ms'])} | {_ms(r['p99_ms'])} | {peak} |")
        out.append(f"\nAdded TTFB p99 at the largest run: {s['stream_added_ttfb_p99_ms']:.2f} ms; "
                   f"memory per open stream: {s['stream_kb_per_open_stream']:.1f} KiB "
                   "((peak RSS during the run - idle RSS of the fresh gateway) / streams).\n")
    if "stream_burst" in f:
        out.append("### 4b. Streaming burst (all streams start at the same instant)\n")
        out.append("| streams | target | complete intact | TTFB p50 ms | TTFB p99 ms | total p99 ms |\n|---|---|---|---|---|---|")
        for c, res in f["stream_burst"].items():
            for n, r in res.items():
                out.append(f"| {c} | {n} | {r['ok']}/{r['requests']} | {_ms(r['ttfb_p50_ms'])} | {_ms(r['ttfb_p99_ms'])} | {_ms(r['p99_ms'])} |")
        out.append("")
    if "idle_rss_kb" in f:
        per = ", ".join(f"{v / 1024:.1f}" for v in f["idle_rss_kb"]["per_process"])
        out.append(f"### 5. Memory\n\nIdle gateway RSS: {f['idle_rss_kb']['total'] / 1024:.1f} MiB "
                   f"(arbiter, workers: {per} MiB); after the run: {f.get('end_rss_kb', 0) / 1024:.1f} MiB.\n")
    out.append("### Goals\n")
    for goal, ok in s["goals"].items():
        out.append(f"- [{'x' if ok else ' '}] {goal}")
    return "\n".join(out)
