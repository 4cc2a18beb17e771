"""Run every benchmark with its default (short) settings; `make bench` runs this.

Each benchmark is its own script and process; one failing does not stop the
others. Results land in ``benchmarks/results/*.json``; BENCHMARKS.md says how
the recorded numbers were made (some with longer settings than these).

Usage: python benchmarks/run_all.py [--only merge,latency] [--gateway serve|shim]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

# name -> (script, extra arguments). The frame benchmark (frames against
# betterproto2 and upb: the codec comparison) and the in-process merge belong
# to the wire and mux layers; they run here as they are.
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "frames": ("bench_frames.py", []),
    "merge_inproc": ("bench_merge_inproc.py", []),
    "bridge": ("bench_bridge.py", []),
    "send": ("bench_send.py", []),
    "send_e2e": ("bench_send.py", ["--e2e"]),
    "merge": ("bench_merge.py", []),
    "latency": ("bench_latency.py", []),
    "memory": ("bench_memory.py", []),
}
# The end-to-end benchmarks that take --gateway (send_e2e starts its own
# `vsmux serve` variants, one per client framing).
TAKES_GATEWAY = {"merge", "latency", "memory"}
# Generous bound per benchmark so `make bench` can never hang.
TIMEOUT_SECONDS = 1800


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated names: " + ",".join(BENCHMARKS))
    p.add_argument("--gateway", choices=["serve", "shim"], default="serve")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    outcome: dict[str, str] = {}
    for name in names:
        script, extra = BENCHMARKS[name]
        path = BENCH_DIR / script
        if not path.exists():
            outcome[name] = "skipped (no script)"
            continue
        cmd = [sys.executable, str(path), *extra]
        if name in TAKES_GATEWAY:
            cmd += ["--gateway", args.gateway]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.monotonic()
        try:
            rc = subprocess.run(cmd, timeout=TIMEOUT_SECONDS, check=False).returncode
        except subprocess.TimeoutExpired:
            rc = -1
        took = time.monotonic() - t0
        outcome[name] = f"ok ({took:.0f}s)" if rc == 0 else f"FAILED rc={rc} ({took:.0f}s)"
    print("\n=== summary")
    for name, result in outcome.items():
        print(f"  {name:14} {result}")
    return 0 if all(not r.startswith("FAILED") for r in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
