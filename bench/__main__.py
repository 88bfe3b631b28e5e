"""`python -m bench`: start the fake upstream and the gateways, run every scenario, report."""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench import report, targets
from bench.scenarios import FULL, TINY, Runner, wait_idle


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "pinning": {"gateway": targets.GATEWAY_CPUS, "load_generator": targets.CLIENT_CPUS,
                        "upstream": targets.UPSTREAM_CPUS}}


def raise_nofile() -> int:
    """1000 concurrent requests need ~3000 descriptors across client, gateway and upstream."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, 65536)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (CI)")
    parser.add_argument("--mlflow", choices=["auto", "yes", "no"], default="auto",
                        help="also run MLflow's gateway (auto: when installed and not --tiny)")
    parser.add_argument("--only", nargs="*", choices=["latency", "throughput", "slow", "streaming", "stream_burst"])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the latency and throughput request counts (quick looks)")
    parser.add_argument("--json", type=Path, help="write all figures here")
    args = parser.parse_args(argv)
    profile = TINY if args.tiny else FULL
    if args.scale != 1.0:
        profile = dataclasses.replace(
            profile, latency_requests=max(50, int(profile.latency_requests * args.scale)),
            throughput_requests=max(100, int(profile.throughput_requests * args.scale)))
    nofile = raise_nofile()
    with_mlflow = args.mlflow == "yes" or (args.mlflow == "auto" and not args.tiny and targets.mlflow_available())
    figures: dict = {"machine": machine(), "nofile": nofile, "profile": profile.__dict__,
                     "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    print(json.dumps(figures["machine"]), flush=True)
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            up, upstream = targets.start_upstream()
            procs.append(up)
            config = Path(tmp) / "gateway.yaml"
            models = targets.write_config(config, upstream, profile.slow_delay,
                                          profile.stream_chunks, profile.stream_interval)
            gw, gw_url = targets.start_gateway(config)
            procs.append(gw)
            gateways = {"gateway": (gw_url, gw.proc.pid)}
            if with_mlflow:
                ml, ml_url = targets.start_mlflow(config)
                procs.append(ml)
                gateways["mlflow"] = (ml_url, ml.proc.pid)
            idle = targets.tree_rss(gw.proc.pid)
            figures["idle_rss_kb"] = {"total": sum(idle.values()), "per_process": list(idle.values())}
            print(f"gateway idle RSS: {sum(idle.values()) / 1024:.1f} MiB over {len(idle)} processes "
                  f"({', '.join(f'{v / 1024:.1f}' for v in idle.values())} MiB)", flush=True)
            run = Runner(profile, upstream, gateways, models, log=lambda s: print(s, flush=True))
            for name in args.only or ["latency", "throughput", "streaming", "stream_burst", "slow"]:
                figures[name] = getattr(run, name)()
            figures["end_rss_kb"] = wait_idle(gw.proc.pid)
        except Exception:
            for p in procs:
                print(f"--- {p.name} log ---\n{p.log_tail()}", file=sys.stderr)
            raise
        finally:
            for p in reversed(procs):
                p.stop()
    summary = report.summarise(figures)
    figures["summary"] = summary
    print(report.render(figures), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
