"""The benchmark suite in its tiny mode: it runs end to end and its figures are sane."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_benchmark_run_produces_sane_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--mlflow", "no", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    f = json.loads(out.read_text())

    lat = f["latency"]
    for target in ("direct", "gateway"):
        assert lat[target]["failed"] == 0 and lat[target]["ok"] == lat[target]["requests"] > 0
        assert 0 < lat[target]["p50_ms"] <= lat[target]["p99_ms"] < 5000
    # The gateway does real work (a second HTTP hop), so it cannot be faster than direct.
    assert lat["gateway"]["p50_ms"] > lat["direct"]["p50_ms"]
    assert 0 < lat["gateway"]["cpu_ms_per_request"] < 1000

    for res in f["throughput"].values():
        assert res["gateway"]["ok"] == res["gateway"]["requests"] and res["gateway"]["rps"] > 0

    for res in f["slow"].values():
        g = res["gateway"]
        assert g["success"] == 1.0
        # A request cannot finish before the upstream's delay.
        assert g["p50_ms"] >= f["profile"]["slow_delay"] * 1000
        assert 0 < g["share_of_ideal"] <= 1.05

    for res in f["streaming"].values():
        g, d = res["gateway"], res["direct"]
        assert g["success"] == 1.0 and d["success"] == 1.0  # every stream complete and intact
        chunks, interval = f["profile"]["stream_chunks"], f["profile"]["stream_interval"]
        assert g["p50_ms"] >= (chunks - 1) * interval * 1000 * 0.9
        assert g["ttfb_p50_ms"] < g["p50_ms"]
        assert g["rss_peak_kb"] >= g["rss_before_kb"] > 0

    s = f["summary"]
    assert math.isfinite(s["added_p50_ms"]) and s["idle_worker_mb"] > 1
    assert len(f["idle_rss_kb"]["per_process"]) == 3  # arbiter + 2 workers
    assert "Goals" in proc.stdout


def test_percall_reports_per_call_and_per_chunk_figures() -> None:
    import re

    for argv, unit in ((["--requests", "50"], "call"), (["--requests", "5", "--stream", "20"], "chunk")):
        proc = subprocess.run([sys.executable, "-m", "bench.percall", "--rounds", "1", *argv],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        found = re.search(rf"CPU per {unit}: least ([\d.]+) us.*Python calls per {unit}: (\d+)", proc.stdout)
        assert found, proc.stdout
        assert 0 < float(found.group(1)) < 100_000 and int(found.group(2)) > 0
