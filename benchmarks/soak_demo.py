"""Soak: `vsmux demo --plain` left running, its RSS sampled.

The demo runs the simulated cluster, the gateway and a client in one process
with a steady workload, as someone who leaves ``make demo`` running would.
Its RSS is sampled every ``--interval`` seconds for ``--seconds``; the
summary compares the RSS after the warm-up with the rest of the run (the
target: flat within 10%). Prints a table and writes
``benchmarks/results/soak_demo.json`` (the samples included).

Usage: python benchmarks/soak_demo.py [--seconds 3600] [--interval 30] [--warmup 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_info, print_table, proc_sample, spawn, write_results

MB = 1024 * 1024


def soak(seconds: float, interval: float) -> list[tuple[float, int]]:
    """(elapsed seconds, RSS bytes) samples of one demo run."""
    cmd = [
        sys.executable,
        "-m",
        "vsmux",
        "demo",
        "--plain",
        "--listen",
        "127.0.0.1:0",
        "--duration",
        str(int(seconds + 60)),
    ]
    samples: list[tuple[float, int]] = []
    with spawn("demo", cmd) as demo:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            if demo.proc.poll() is not None:
                raise RuntimeError(f"the demo exited early with {demo.proc.returncode}")
            samples.append((round(elapsed, 1), proc_sample(demo.pid).rss_bytes))
            # Drain its status lines so its stdout pipe never fills.
            while not demo.lines.empty():
                demo.lines.get_nowait()
            time.sleep(interval)
    return samples


def summarize(samples: list[tuple[float, int]], warmup: float) -> dict[str, Any]:
    settled = [rss for t, rss in samples if t >= warmup]
    if not settled:
        raise ValueError("no samples after the warm-up; run longer")
    base = settled[0]
    return {
        "rss_after_warmup_mb": round(base / MB, 1),
        "rss_min_mb": round(min(settled) / MB, 1),
        "rss_max_mb": round(max(settled) / MB, 1),
        "rss_last_mb": round(settled[-1] / MB, 1),
        "max_growth_vs_warmup": round(max(settled) / base - 1, 3),
        "flat_within_10pct": max(settled) <= 1.10 * base and min(settled) >= 0.90 * base,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3600.0)
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=300.0)
    args = p.parse_args()
    info = machine_info()
    samples = soak(args.seconds, args.interval)
    summary = summarize(samples, args.warmup)
    print_table(["what", "value"], sorted(summary.items()))
    path = write_results(
        "soak_demo",
        {
            "machine": info,
            "args": vars(args),
            "summary": summary,
            "samples": samples,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
