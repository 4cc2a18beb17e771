"""Many clients at once: connect, first response, fairness, gaps, and memory after.

For each client count N (``--clients 50,200,1000``):

1. The tablets start in their own process (``--tablets``):

   - ``cluster`` (default): ``vsmux cluster`` serves a simulated keyspace
     (``commerce``, 4 shards, ``--rate`` transactions/s), one gRPC server
     per tablet. It builds each stream's events from its binlog per
     stream, and its workload runs in the same process: on 2 cores it
     cannot feed more than a few dozen streams, so with many clients it,
     not the gateway, sets the pace (its CPU is reported);
   - ``replay``: ``load_tablets.py``, which encodes each 100 ms tick of
     transactions once per tablet and sends the same bytes on every stream
     (keyspace ``bench``): the gateway is what is measured;
   - ``inprocess``: no tablet process; ``vsmux serve --workload-rate``
     simulates ``commerce`` itself, sharing the gateway's loop.

   ``vsmux serve`` runs the gateway on that topology in another process
   (through ``_load_variant.py`` with ``--variant``, to turn fixes off),
   with ``--no-share`` unless ``--share`` is given: every session then
   streams from its own tablet streams, so N clients cost 4N tablet streams
   (the setup of the load targets; ``bench_sharing.py`` compares the two).
2. Once the gateway has idled for ``--idle`` seconds its RSS is taken as
   the idle baseline.
3. N clients (``load_client.py``, ``--per-process`` of them per process,
   each client its own TCP connection) start at one instant: each asks for a
   VStream of ``commerce`` from ``current`` with ``heartbeat_interval=1``.
   After ``--warmup`` seconds a ``--seconds`` window is measured; then every
   client cancels its stream and its process exits.
4. The gateway's RSS is sampled for ``--after`` seconds after the clients
   leave.

Reported per N: clients whose call succeeded; time from the burst to each
client's first response and to its first transaction (p50/p99/max);
per-client event rate in the window (min, median and min/median), and how
many clients got no events in it and no transaction at all; each client's
largest gap between responses in the window (p50/p99/max over clients) and
how many clients had a gap over 2 heartbeat intervals; the gateway's RSS
idle, peak during, and ``--after`` seconds after the clients left; CPU of
the gateway, the tablets and the client processes in the window (the
machine's cores are shared by all three).

Targets (issue 12): every client connects; first response p99 < 2 s at 200
clients; no client's rate below 0.5 of the median; no gap over 2 heartbeat
intervals; RSS within 20% of idle ``--after`` (60) seconds after they leave.

Writes ``benchmarks/results/bench_load.json`` (``--name``). With
``--profile``, py-spy samples the gateway during the window
(``benchmarks/results/profile_load_n<N>.txt``).

Usage: python benchmarks/bench_load.py [--clients 50,200,1000] [--tablets replay]
       [--seconds 30] [--after 60] [--variant '--no-batching --release none']
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    RESULTS_DIR,
    RssSampler,
    client_burst,
    free_port,
    machine_info,
    print_table,
    proc_sample,
    python_cmd,
    spawn,
    start_clients,
    vsmux_serve_cmd,
    wait_for_port,
    write_results,
)
from _profile import profile_window

MB = 1_000_000
SHARDS_4 = "-40,40-80,80-c0,c0-"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _cluster_cmd(topology: Path, rate: float, shards: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vsmux",
        "cluster",
        "--topology-out",
        str(topology),
        "--keyspace",
        "commerce",
        f"--shards={shards}",
        "--rate",
        str(rate),
    ]


def _wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not written within {timeout:.0f}s")
        time.sleep(0.2)


def _tablets_cmd(args: argparse.Namespace, topology: Path) -> list[str]:
    if args.tablets == "cluster":
        return _cluster_cmd(topology, args.rate, args.shards)
    return python_cmd(
        "load_tablets.py",
        "--tablets",
        str(len(args.shards.split(","))),
        "--rate",
        str(args.rate),
        "--topology",
        str(topology),
    )


def _inprocess_topology(shards: str) -> str:
    """A topology whose tablets the gateway simulates itself (``simulated = true``)."""
    names = shards.split(",")
    lines = ['cell = "zone1"', "", "[keyspaces.commerce]"]
    lines.append("shards = [" + ", ".join(f'"{s}"' for s in names) + "]")
    for i, shard in enumerate(names):
        lines += [
            "",
            "[[tablets]]",
            'keyspace = "commerce"',
            f'shard = "{shard}"',
            'type = "primary"',
            f"uid = {100 + i}",
            "simulated = true",
        ]
    return "\n".join(lines) + "\n"


def _cpu(child: Any) -> float:
    return 0.0 if child is None else proc_sample(child.pid).cpu_seconds


def one_count(args: argparse.Namespace, n: int, work: Path) -> dict[str, Any]:
    topology = work / f"topology-{n}.toml"
    topology.unlink(missing_ok=True)
    extra = [*([] if args.share else ["--no-share"]), *args.gateway_arg]
    tablets: contextlib.AbstractContextManager[Any]
    if args.tablets == "inprocess":
        topology.write_text(_inprocess_topology(args.shards))
        extra += ["--workload-rate", str(args.rate)]
        tablets = contextlib.nullcontext()  # the gateway runs them
    else:
        tablets = spawn(f"tablets-{n}", _tablets_cmd(args, topology), work)
    with tablets as cluster:
        _wait_for_file(topology, 60)
        port = free_port()
        serve = vsmux_serve_cmd(topology, port, "--log-level", "WARNING", *extra)
        if args.variant:
            serve = python_cmd("_load_variant.py", *shlex.split(args.variant), "--", *serve[4:])
        if args.gateway_env:
            serve = ["env", *args.gateway_env, *serve]  # env execs: the pid stays the gateway's
        with spawn(f"gateway-{n}", serve, work) as gw:
            wait_for_port(port, gw, timeout=60)
            time.sleep(args.idle)
            idle = proc_sample(gw.pid).rss_bytes
            burst = client_burst(
                n, args.per_process, lead=args.lead, warmup=args.warmup, seconds=args.seconds
            )
            profiler = None
            with RssSampler(gw.pid, interval=0.5) as during, contextlib.ExitStack() as stack:
                clients = start_clients(
                    stack,
                    "load_client.py",
                    burst,
                    port,
                    heartbeat_interval=args.heartbeat_interval,
                    keyspace="bench" if args.tablets == "replay" else "commerce",
                    name=f"clients-{n}",
                    log_dir=work,
                )
                time.sleep(max(0.0, burst.measure_from - time.time()))
                cpu0 = {
                    "gateway": proc_sample(gw.pid).cpu_seconds,
                    "tablets": _cpu(cluster),
                }
                t0 = time.monotonic()
                if args.profile:
                    profiler = profile_window(
                        gw.pid, args.seconds - 1, RESULTS_DIR / f"profile_load_n{n}.txt"
                    )
                time.sleep(max(0.0, burst.end_at - time.time()))
                elapsed = time.monotonic() - t0
                cpu = {
                    "gateway": (proc_sample(gw.pid).cpu_seconds - cpu0["gateway"]) / elapsed,
                    "tablets": (_cpu(cluster) - cpu0["tablets"]) / elapsed,
                }
                results = [c.read_json_line(args.seconds + 120) for c in clients]
            left_at = time.monotonic()
            if profiler is not None:
                profiler.finish()
            after: list[tuple[float, int]] = []
            while True:
                t = time.monotonic() - left_at
                after.append((t, proc_sample(gw.pid).rss_bytes))
                if t >= args.after:
                    break
                time.sleep(min(1.0, args.after - t))
    return summarize(args, n, idle, during.samples, during.peak_rss, after, cpu, results)


def summarize(
    args: argparse.Namespace,
    n: int,
    idle: int,
    during: list[tuple[float, int]],
    peak: int,
    after: list[tuple[float, int]],
    cpu: dict[str, float],
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    clients = [c for r in results for c in r["clients"]]
    window = statistics.median(r["window_s"] for r in results)
    ok = [c for c in clients if c["status"] == "ok"]
    failures: dict[str, int] = {}
    for c in clients:
        if c["status"] != "ok":
            failures[c["status"]] = failures.get(c["status"], 0) + 1
    firsts = [c["first_s"] for c in ok if c["first_s"] is not None]
    # Older client results have no first_data_s: treat as unknown, not as none.
    data_firsts = [c.get("first_data_s") for c in ok]
    first_data = [f for f in data_firsts if f is not None]
    rates = [c["events"] / window for c in ok]
    median_rate = statistics.median(rates) if rates else float("nan")
    gaps = [c["max_gap_s"] for c in ok]
    limit = 2.0 * args.heartbeat_interval
    client_cpu = sum(r["cpu_s"] for r in results) / max(1e-9, window + args.warmup)
    rss_after = after[-1][1]
    return {
        "clients": n,
        "client_processes": len(results),
        "connected": len(ok),
        "first_response_received": len(firsts),
        "failures": failures,
        "first_response_p50_s": _pct(firsts, 0.50),
        "first_response_p99_s": _pct(firsts, 0.99),
        "first_response_max_s": max(firsts, default=float("nan")),
        "first_data_received": len(first_data),
        "first_data_p50_s": _pct(first_data, 0.50),
        "first_data_p99_s": _pct(first_data, 0.99),
        "first_data_max_s": max(first_data, default=float("nan")),
        "clients_without_events": sum(1 for c in ok if c["events"] == 0),
        # Never a response with a transaction, from the burst to the end (a
        # VGTID-only response counts as events, not as a transaction).
        "clients_without_transactions": len(ok) - len(first_data),
        "window_s": window,
        "events_per_s_min": min(rates, default=float("nan")),
        "events_per_s_median": median_rate,
        "events_per_s_max": max(rates, default=float("nan")),
        "rate_min_over_median": (min(rates) / median_rate) if rates and median_rate else 0.0,
        "clients_below_half_median": sum(1 for r in rates if r < 0.5 * median_rate),
        "heartbeats_per_client_median": statistics.median([c["heartbeats"] for c in ok] or [0]),
        "max_gap_p50_s": _pct(gaps, 0.50),
        "max_gap_p99_s": _pct(gaps, 0.99),
        "max_gap_max_s": max(gaps, default=float("nan")),
        "clients_with_gap_over_limit": sum(1 for g in gaps if g > limit),
        "gateway_rss_idle_mb": idle / MB,
        "gateway_rss_peak_during_mb": peak / MB,
        "gateway_rss_after_mb": rss_after / MB,
        "gateway_rss_after_over_idle": rss_after / idle,
        "gateway_rss_after_timeline_mb": [(round(t, 1), round(r / MB, 1)) for t, r in after],
        "gateway_rss_during_timeline_mb": [(round(t, 1), round(r / MB, 1)) for t, r in during][::4],
        "cpu_cores": {**cpu, "clients": client_cpu},
        # Per client, in the order the client processes listed them.
        "per_client": {
            "status_ok": [c["status"] == "ok" for c in clients],
            "first_s": [None if c["first_s"] is None else round(c["first_s"], 3) for c in clients],
            "first_data_s": [
                None if c.get("first_data_s") is None else round(c["first_data_s"], 3)
                for c in clients
            ],
            "events_per_s": [round(c["events"] / window, 1) for c in clients],
            "heartbeats": [c["heartbeats"] for c in clients],
            "max_gap_s": [round(c["max_gap_s"], 3) for c in clients],
        },
        "client_maxrss_mb": max(r["maxrss_mb"] for r in results),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", default="50,200,1000", help="comma-separated client counts")
    p.add_argument("--rate", type=float, default=500.0, help="transactions/s over the keyspace")
    p.add_argument("--shards", default=SHARDS_4, help="the keyspace's shards")
    p.add_argument(
        "--tablets",
        choices=("cluster", "replay", "inprocess"),
        default="cluster",
        help="cluster: vsmux cluster (the simulated keyspace commerce); replay: "
        "load_tablets.py (keyspace bench, each tick's transactions encoded once per tablet); "
        "inprocess: the gateway simulates commerce itself (vsmux serve --workload-rate)",
    )
    p.add_argument("--seconds", type=float, default=30.0, help="measured window")
    p.add_argument("--warmup", type=float, default=10.0, help="from the burst to the window")
    p.add_argument("--after", type=float, default=60.0, help="RSS watched after the clients left")
    p.add_argument("--idle", type=float, default=5.0, help="gateway idle time before the burst")
    p.add_argument("--lead", type=float, default=3.0, help="client processes' start-up time")
    p.add_argument("--per-process", type=int, default=250, help="clients per client process")
    p.add_argument("--heartbeat-interval", type=int, default=1)
    p.add_argument("--gateway-arg", action="append", default=[], help="extra vsmux serve option")
    p.add_argument(
        "--share", action="store_true", help="let sessions share tablet streams (default: off)"
    )
    p.add_argument(
        "--variant",
        default="",
        help="run the gateway through _load_variant.py with these options "
        "(e.g. '--no-batching --release none')",
    )
    p.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the gateway process (e.g. PYTHONMALLOC=malloc)",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the gateway in the window")
    p.add_argument("--name", default="bench_load")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.clients.split(",") if x.strip()]
    info = machine_info()
    runs = []
    with tempfile.TemporaryDirectory(prefix="vsmux-load-") as tmp:
        for n in counts:
            print(f"-- {n} clients", file=sys.stderr, flush=True)
            result = one_count(args, n, Path(tmp))
            print(
                json.dumps(
                    {k: v for k, v in result.items() if k != "per_client" and "timeline" not in k}
                ),
                file=sys.stderr,
                flush=True,
            )
            runs.append(result)
    rows = []
    for r in runs:
        rows.append(
            [
                r["clients"],
                f"{r['connected']}/{r['clients']}",
                r["first_response_p50_s"],
                r["first_response_p99_s"],
                r["first_data_p99_s"],
                r["clients_without_transactions"],
                r["events_per_s_median"],
                r["rate_min_over_median"],
                r["max_gap_p50_s"],
                r["max_gap_p99_s"],
                r["max_gap_max_s"],
                r["gateway_rss_idle_mb"],
                r["gateway_rss_peak_during_mb"],
                r["gateway_rss_after_mb"],
                r["cpu_cores"]["gateway"],
                r["cpu_cores"]["tablets"],
                r["cpu_cores"]["clients"],
            ]
        )
    print_table(
        [
            "N",
            "connected",
            "1st p50 s",
            "1st p99 s",
            "1st tx p99 s",
            "no tx",
            "events/s med",
            "min/med",
            "gap p50 s",
            "gap p99 s",
            "gap max s",
            "RSS idle MB",
            "RSS peak MB",
            f"RSS +{args.after:.0f}s MB",
            "gw cores",
            "tablet cores",
            "client cores",
        ],
        rows,
    )
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_results(
        args.name,
        {
            "machine": info,
            "params": {k: v for k, v in vars(args).items()},
            "runs": runs,
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
