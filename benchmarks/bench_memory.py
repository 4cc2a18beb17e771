"""Gateway memory under a stalled client and under one huge transaction.

1. **Slow client**: 64 flooding replay tablets, a client that reads for a few
   seconds, stops reading for ``--pause`` seconds (30 for the recorded run;
   shorter by default), then reads again. The gateway's RSS is sampled every
   100 ms: it must stay bounded by its buffers (per-stream queues and HTTP/2
   windows), not grow with the stall.
2. **Huge transaction**: tablet 0 of 4 opens the stream with one transaction of
   ``--huge-mb`` MB of ROW events (generated lazily, ~256 KB responses); the
   client asks for ``transaction_chunk_size`` and reads until it has it all.
   Gateway peak RSS must stay far below the transaction's size.

Prints a table and writes ``benchmarks/results/bench_memory.json``. Target for
both: gateway peak RSS under 200 MB.

Usage: python benchmarks/bench_memory.py [--pause 30] [--huge-mb 1024] [--runs 3]
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
    RssSampler,
    free_port,
    gateway_cmd,
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

MB = 1_000_000


def _stack(
    args: argparse.Namespace, work: Path, tablets: int, tablet_args: list[str]
) -> tuple[list[str], list[str]]:
    topo = work / f"topology-{tablets}.toml"
    tablets_cmd = python_cmd(
        "replay_tablet.py",
        "--tablets",
        str(tablets),
        "--topology",
        str(topo),
        "--max-seconds",
        "3600",
        *tablet_args,
    )
    return tablets_cmd, [str(topo)]


def slow_client_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    tablets_cmd, (topo,) = _stack(
        args, work, args.shards, ["--mode", "flood", "--tx-per-response", str(args.tx_per_response)]
    )
    with spawn("tablets", tablets_cmd, work) as tablets:
        ready = tablets.read_json_line(60)
        port = free_port()
        with spawn(
            "gateway", gateway_cmd(args.gateway, Path(topo), port, args.gateway_arg), work
        ) as gw:
            wait_for_port(port, gw, timeout=60)
            idle = proc_sample(gw.pid).rss_bytes
            marks: dict[str, int] = {}
            with RssSampler(gw.pid) as sampler:

                def on_event(event: str) -> None:
                    if event in ("pause_start", "pause_end"):
                        marks[event] = proc_sample(gw.pid).rss_bytes
                        marks[event + "_t"] = len(sampler.samples)

                read_before = 3.0
                cmd = python_cmd(
                    "count_client.py",
                    "--port",
                    str(port),
                    "--shards=" + ",".join(ready["shards"]),
                    "--warmup",
                    "1",
                    "--pause-after",
                    str(read_before),
                    "--pause-seconds",
                    str(args.pause),
                    "--seconds",
                    str(read_before + args.pause + 3.0),
                    "--max-seconds",
                    str(args.pause + 60),
                )
                result = run_client(cmd, on_event, timeout=args.pause + 90, log_dir=work)
            peak = proc_sample(gw.pid).hwm_bytes
    during = [rss for _, rss in sampler.samples[marks.get("pause_start_t", 0) :]]
    return {
        "status": result["status"],
        "events_after_resume_ok": result.get("events", 0) > 0,
        "client": result,
        "gateway_rss_idle_mb": idle / MB,
        "gateway_rss_at_pause_start_mb": marks.get("pause_start", 0) / MB,
        "gateway_rss_at_pause_end_mb": marks.get("pause_end", 0) / MB,
        "gateway_rss_max_during_pause_mb": max(during, default=0) / MB,
        "gateway_peak_rss_mb": peak / MB,
        "rss_timeline_mb": [(round(t, 1), round(r / MB, 1)) for t, r in sampler.samples[::10]],
    }


def huge_tx_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    huge = args.huge_mb * MB
    tablets_cmd, (topo,) = _stack(args, work, 4, ["--mode", "idle", "--huge-bytes", str(huge)])
    with spawn("tablets", tablets_cmd, work) as tablets:
        ready = tablets.read_json_line(60)
        port = free_port()
        with spawn(
            "gateway", gateway_cmd(args.gateway, Path(topo), port, args.gateway_arg), work
        ) as gw:
            wait_for_port(port, gw, timeout=60)
            idle = proc_sample(gw.pid).rss_bytes
            t0 = time.monotonic()
            with RssSampler(gw.pid) as sampler:
                cmd = python_cmd(
                    "count_client.py",
                    "--port",
                    str(port),
                    "--shards=" + ",".join(ready["shards"]),
                    "--chunk-size",
                    str(args.chunk_size),
                    "--until-bytes",
                    str(huge),
                    "--max-seconds",
                    str(args.huge_timeout),
                )
                result = run_client(cmd, None, timeout=args.huge_timeout + 30, log_dir=work)
            elapsed = time.monotonic() - t0
            peak = proc_sample(gw.pid).hwm_bytes
            tablets_peak = proc_sample(tablets.pid).hwm_bytes
    return {
        "status": result["status"],
        "received_mb": result.get("bytes", 0) / MB,
        "complete": result.get("bytes", 0) >= huge,
        "elapsed_s": elapsed,
        "mb_per_s": result.get("mb_per_s"),
        "gateway_rss_idle_mb": idle / MB,
        "gateway_peak_rss_mb": peak / MB,
        "sampled_peak_rss_mb": sampler.peak_rss / MB,
        "tablets_peak_rss_mb": tablets_peak / MB,
        "client_maxrss_mb": result.get("client_maxrss_mb"),
        "client": result,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shards", type=int, default=64)
    p.add_argument("--pause", type=float, default=10.0, help="client stall, seconds")
    p.add_argument(
        "--tx-per-response",
        type=int,
        default=1,
        help="slow client: transactions per tablet response (~4 KB each; 64 is about "
        "vttablet's 250 KB packet)",
    )
    p.add_argument("--huge-mb", type=int, default=256, help="size of the huge transaction")
    p.add_argument("--chunk-size", type=int, default=1 << 20, help="transaction_chunk_size (bytes)")
    p.add_argument("--huge-timeout", type=float, default=300.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", choices=["slow", "huge"], default=None)
    p.add_argument("--gateway", choices=GATEWAY_KINDS, default="serve")
    p.add_argument("--gateway-arg", action="append", default=[])
    p.add_argument("--name", default="bench_memory")
    args = p.parse_args(argv)
    info = machine_info()
    print(
        f"bench_memory: {args.shards} shards, pause {args.pause}s; {args.huge_mb} MB transaction "
        f"with transaction_chunk_size={args.chunk_size}; {args.runs} runs; {info['date_utc']}",
        flush=True,
    )
    slow: list[dict[str, Any]] = []
    huge: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vsmux-bench-") as tmp:
        work = Path(tmp)
        for r in range(args.runs):
            if args.only in (None, "slow"):
                s = slow_client_run(args, work)
                slow.append(s)
                print(
                    f"  slow client run {r + 1}: peak {s['gateway_peak_rss_mb']:.0f} MB, "
                    f"pause start/end {s['gateway_rss_at_pause_start_mb']:.0f}/"
                    f"{s['gateway_rss_at_pause_end_mb']:.0f} MB ({s['status']})",
                    flush=True,
                )
            if args.only in (None, "huge"):
                h = huge_tx_run(args, work)
                huge.append(h)
                print(
                    f"  huge tx run {r + 1}: {h['received_mb']:.0f} MB in {h['elapsed_s']:.1f}s, "
                    f"gateway peak {h['gateway_peak_rss_mb']:.0f} MB ({h['status']})",
                    flush=True,
                )
    rows = []
    if slow:
        rows.append(
            [
                f"slow client: {args.shards} shards, {args.pause:g}s pause",
                median_of(slow, "gateway_rss_idle_mb"),
                median_of(slow, "gateway_rss_at_pause_start_mb"),
                median_of(slow, "gateway_rss_max_during_pause_mb"),
                median_of(slow, "gateway_peak_rss_mb"),
                f"{sum(s['status'] == 'ok' for s in slow)}/{len(slow)}",
            ]
        )
    if huge:
        rows.append(
            [
                f"{args.huge_mb} MB transaction, chunk {args.chunk_size}",
                median_of(huge, "gateway_rss_idle_mb"),
                float("nan"),
                median_of(huge, "sampled_peak_rss_mb"),
                median_of(huge, "gateway_peak_rss_mb"),
                f"{sum(h['complete'] for h in huge)}/{len(huge)} complete, "
                f"{median_of(huge, 'mb_per_s'):.0f} MB/s",
            ]
        )
    print_table(
        ["run", "idle RSS MB", "RSS at stall MB", "max RSS in run MB", "peak RSS MB", "ok"], rows
    )
    path = write_results(
        args.name,
        {
            "benchmark": "bench_memory",
            "machine": info,
            "config": vars(args),
            "slow_client": slow,
            "huge_transaction": huge,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
