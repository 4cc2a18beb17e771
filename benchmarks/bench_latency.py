"""Commit-to-client latency at a steady rate: 1,000 transactions/s over 8 shards.

The replay tablets run in paced mode: transactions spread evenly over the
tablets, each stamped with its commit time (``current_time``, ns) just before
it is sent. The counting client (``--latency``) reads the COMMIT events'
stamps through vsmux and records receipt minus commit time (same host, same
clock). As a floor, the relay forwards one paced tablet over the same stack.

Prints p50/p99/max (medians over ``--runs``) and writes
``benchmarks/results/bench_latency.json``.

Usage: python benchmarks/bench_latency.py [--rate 1000] [--shards 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    GATEWAY_KINDS,
    free_port,
    gateway_cmd,
    machine_busy_seconds,
    machine_info,
    median_of,
    print_table,
    proc_sample,
    python_cmd,
    run_client,
    spawn,
    wait_for_port,
    write_results,
)


def latency_client(
    args: argparse.Namespace, port: int, pid: int, shards: list[str], log_dir: Path
) -> dict[str, Any]:
    marks: dict[str, Any] = {}

    def on_event(event: str) -> None:
        if event in ("measure_start", "measure_end"):
            marks[event] = (time.monotonic(), proc_sample(pid).cpu_seconds)
            marks[event + "_busy"] = machine_busy_seconds()

    cmd = python_cmd(
        "count_client.py",
        "--port",
        str(port),
        "--latency",
        "--warmup",
        str(args.warmup),
        "--seconds",
        str(args.seconds),
        "--shards=" + ",".join(shards),
        "--max-seconds",
        str(args.warmup + args.seconds + 60),
    )
    result = run_client(cmd, on_event, timeout=args.warmup + args.seconds + 90, log_dir=log_dir)
    if "measure_end" in marks and "measure_start" in marks:
        (t0, c0), (t1, c1) = marks["measure_start"], marks["measure_end"]
        result["server_cpu_util"] = (c1 - c0) / (t1 - t0)
        # Every core's busy time over the window (this run's processes included).
        busy = marks["measure_end_busy"] - marks["measure_start_busy"]
        result["machine_busy_cores"] = busy / (t1 - t0)
    result["tx_per_s"] = result.get("commits", 0) / max(1e-9, result.get("window_s", 0.0))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=1000.0, help="transactions/s over all shards")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--gateway", choices=GATEWAY_KINDS, default="serve")
    p.add_argument("--gateway-arg", action="append", default=[])
    p.add_argument("--name", default="bench_latency")
    args = p.parse_args(argv)
    info = machine_info()
    print(
        f"bench_latency: {args.rate:.0f} tx/s over {args.shards} shards, {args.runs} runs x "
        f"{args.seconds}s; {info['nproc']} cores, {info['date_utc']}",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    relay_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vsmux-bench-") as tmp:
        work = Path(tmp)
        topo = work / "topology.toml"
        tablets_cmd = python_cmd(
            "replay_tablet.py",
            "--tablets",
            str(args.shards),
            "--mode",
            "paced",
            "--rate",
            str(args.rate),
            "--topology",
            str(topo),
            "--max-seconds",
            "3600",
        )
        with spawn("tablets", tablets_cmd, work) as tablets:
            ready = tablets.read_json_line(60)
            shards: list[str] = ready["shards"]
            relay_cmd = python_cmd(
                "relay.py",
                "--tablet",
                f"127.0.0.1:{ready['ports'][0]}",
                "--shard",
                shards[0],
                "--max-seconds",
                "3600",
            )
            with spawn("relay", relay_cmd, work) as relay:
                relay_port = int(relay.read_json_line(30)["port"])
                gw_port = free_port()
                with spawn(
                    "gateway", gateway_cmd(args.gateway, topo, gw_port, args.gateway_arg), work
                ) as gateway:
                    wait_for_port(gw_port, gateway, timeout=60)
                    for r in range(args.runs):
                        res = latency_client(args, gw_port, gateway.pid, shards, work)
                        runs.append(res)
                        rr = latency_client(args, relay_port, relay.pid, shards[:1], work)
                        relay_runs.append(rr)
                        print(
                            f"  run {r + 1}: vsmux p50 {res.get('p50_ms', float('nan')):.2f} ms "
                            f"p99 {res.get('p99_ms', float('nan')):.2f} ms "
                            f"max {res.get('max_ms', float('nan')):.2f} ms "
                            f"({res.get('tx_per_s', 0):.0f} tx/s, {res['status']}); relay p99 "
                            f"{rr.get('p99_ms', float('nan')):.2f} ms",
                            flush=True,
                        )
                    peak = proc_sample(gateway.pid).hwm_bytes / 1e6
    ok = [r for r in runs if r["status"] == "ok"]
    ok_relay = [r for r in relay_runs if r["status"] == "ok"]
    keys = ("tx_per_s", "p50_ms", "p99_ms", "max_ms", "server_cpu_util", "machine_busy_cores")
    med = {k: median_of(ok, k) for k in keys}
    med_relay = {k: median_of(ok_relay, k) for k in keys}
    print_table(
        ["path", "tx/s", "p50 ms", "p99 ms", "max ms", "server CPU", "machine busy cores", "ok"],
        [
            [
                f"vsmux ({args.shards} shards)",
                med["tx_per_s"],
                med["p50_ms"],
                med["p99_ms"],
                med["max_ms"],
                f"{med['server_cpu_util']:.0%}",
                med["machine_busy_cores"],
                f"{len(ok)}/{args.runs}",
            ],
            [
                "relay (1 shard)",
                med_relay["tx_per_s"],
                med_relay["p50_ms"],
                med_relay["p99_ms"],
                med_relay["max_ms"],
                f"{med_relay['server_cpu_util']:.0%}",
                med_relay["machine_busy_cores"],
                f"{len(ok_relay)}/{args.runs}",
            ],
        ],
    )
    path = write_results(
        args.name,
        {
            "benchmark": "bench_latency",
            "machine": info,
            "config": vars(args),
            "median": med,
            "relay_median": med_relay,
            "gateway_peak_rss_mb": peak,
            "runs": runs,
            "relay_runs": relay_runs,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
