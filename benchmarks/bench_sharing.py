"""Shared upstream streams: the gateway's cost with sharing on and off, side by side.

The tablets run in their own process for the whole run (``--tablets``):

- ``cluster`` (default): ``vsmux cluster`` through ``_counting_cluster.py``,
  which counts the tablet calls it serves and the responses it sends;
  keyspace ``commerce`` on ``--shards`` (4 by default) at ``--rate``
  transactions/s. Its tablets build every stream's responses per stream: a
  stream they cannot keep up with gets fewer, larger responses (more events
  per response), which makes the gateway's work per event cheaper; the
  table shows events per tablet response for that reason;
- ``replay``: ``load_tablets.py`` (keyspace ``bench``), which encodes each
  100 ms tick's transactions once per tablet and sends those bytes on every
  stream, so both modes get the same responses; it counts nothing, so the
  tablet streams come from the gateway's metrics (sharing on: feeds opened
  plus private streams; off: shard streams created).

Then, for each repeat, each client count N (``--clients 1,10,50``) and each
mode (``on``: ``vsmux serve --share``, ``off``: ``--no-share``; which of
the two goes first alternates from one N to the next):

1. a fresh ``vsmux serve`` gateway starts on the tablets' topology and
   idles for ``--idle`` seconds;
2. N clients (``sharing_client.py``: ``load_client.py``'s raw HTTP/2
   clients, each its own connection, each a VStream of the keyspace from
   ``current`` on every shard with ``heartbeat_interval=1``) start at one
   instant; after ``--warmup`` seconds a ``--seconds`` window is measured;
   then the clients leave and the gateway is stopped.

Measured per cell:

- tablet VStream calls opened from the clients' burst to the window's end
  (sharing off, N clients open 4N of them), and how many were open at the
  window's end;
- gateway CPU (``/proc/<pid>/stat`` utime+stime) in the window divided by
  the events all clients received in the window (microseconds per
  delivered event), and the gateway's cores;
- per-client events/s in the window (median and min);
- latency: for every COMMIT received in the window, receipt time minus the
  event's ``current_time`` (stamped by the tablet when it sent the
  response), over all clients (p50, p99);
- the tablets' and the clients' cores, and the gateway's counters from its
  metrics endpoint (``vsmux_feed*``, ``vsmux_vstreams*``), read after the
  window.

Reported: every cell, the median per (N, mode) over the repeats, and the
on/off ratio of CPU per delivered event for each repeat (on and off of one
repeat run back to back) and their median. Goal (issue 14): at 50 clients
CPU per delivered event with sharing on at most 0.5 of sharing off.

Writes ``benchmarks/results/bench_sharing.json`` (``--name``). With
``--profile``, py-spy samples the gateway in the first repeat's window at
the largest N (``benchmarks/results/profile_sharing_n<N>_<mode>.txt``).

Usage: python benchmarks/bench_sharing.py [--clients 1,10,50] [--repeats 3]
       [--seconds 20] [--rate 500] [--tablets replay]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    REPO_ROOT,
    RESULTS_DIR,
    Child,
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

SHARDS_4 = "-40,40-80,80-c0,c0-"
MODES = ("on", "off")
# Gateway metrics kept from the scrape after the window.
_KEEP_METRIC = re.compile(r"^(vsmux_feed\w*|VStreamsCreated\w*|vsmux_vstreams\w*)")


def _pct_hist(hist: Counter[float], q: float) -> float:
    """The ``q`` quantile of a histogram ``{bucket start (ms): count}``."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank = max(1, math.ceil(q * total))
    seen = 0
    for start in sorted(hist):
        seen += hist[start]
        if seen >= rank:
            return start
    return max(hist)


def _read_counts(path: Path) -> dict[str, Any]:
    for _ in range(20):
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        time.sleep(0.05)
    return {}


def _wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not written within {timeout:.0f}s")
        time.sleep(0.2)


def _scrape(port: int) -> dict[str, float]:
    """The gateway's feed metrics (summed over labels), or {} if it has none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {"scrape_failed": 1.0}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not _KEEP_METRIC.match(line):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            out[name] = out.get(name, 0.0) + float(value)
    return out


def _git_head() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "src"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (src modified)" if dirty else "")


def one_cell(
    args: argparse.Namespace,
    n: int,
    mode: str,
    cluster: Child,
    topology: Path,
    counts_path: Path | None,
    work: Path,
    profile: bool,
) -> dict[str, Any]:
    port = free_port()
    metrics_port = free_port()
    serve = vsmux_serve_cmd(
        topology,
        port,
        "--log-level",
        "WARNING",
        "--share" if mode == "on" else "--no-share",
        "--metrics",
        f"127.0.0.1:{metrics_port}",
        *args.gateway_arg,
    )
    with spawn(f"gateway-{n}-{mode}", serve, work) as gw:
        wait_for_port(port, gw, timeout=60)
        time.sleep(args.idle)
        before = _read_counts(counts_path) if counts_path else {}
        burst = client_burst(
            n, args.per_process, lead=args.lead, warmup=args.warmup, seconds=args.seconds
        )
        profiler = None
        with contextlib.ExitStack() as stack:
            clients = start_clients(
                stack,
                "sharing_client.py",
                burst,
                port,
                heartbeat_interval=args.heartbeat_interval,
                keyspace="bench" if args.tablets == "replay" else "commerce",
                name=f"clients-{n}-{mode}",
                log_dir=work,
            )
            time.sleep(max(0.0, burst.measure_from - time.time()))
            gw0 = proc_sample(gw.pid).cpu_seconds
            tab0 = proc_sample(cluster.pid).cpu_seconds
            t0 = time.monotonic()
            if profile:
                out = RESULTS_DIR / f"profile_sharing_n{n}_{mode}.txt"
                profiler = profile_window(gw.pid, args.seconds - 1, out)
            time.sleep(max(0.0, burst.end_at - time.time()))
            elapsed = time.monotonic() - t0
            gw_cpu = proc_sample(gw.pid).cpu_seconds - gw0
            tab_cpu = proc_sample(cluster.pid).cpu_seconds - tab0
            at_end = _read_counts(counts_path) if counts_path else {}
            metrics = _scrape(metrics_port)
            results = [c.read_json_line(args.seconds + 120) for c in clients]
        if profiler is not None:
            profiler.finish()
    # The old gateway's tablet streams end with its connections: wait for
    # the tablets to see them go, so the next cell starts from a quiet cluster.
    deadline = time.monotonic() + 10
    while counts_path is not None and time.monotonic() < deadline:
        if _read_counts(counts_path).get("vstream_open", 0) == 0:
            break
        time.sleep(0.2)
    return summarize(args, n, mode, before, at_end, metrics, gw_cpu, tab_cpu, elapsed, results)


def summarize(
    args: argparse.Namespace,
    n: int,
    mode: str,
    before: dict[str, Any],
    at_end: dict[str, Any],
    metrics: dict[str, float],
    gw_cpu: float,
    tab_cpu: float,
    elapsed: float,
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    clients = [c for r in results for c in r["clients"]]
    ok = [c for c in clients if c["status"] == "ok"]
    window = statistics.median(r["window_s"] for r in results)
    rates = [c["events"] / window for c in ok]
    events = sum(c["events"] for c in ok)
    hist: Counter[float] = Counter()
    for r in results:
        width = r["latency_bucket_ms"]
        for bucket, count in r["latency_hist"].items():
            hist[round(int(bucket) * width, 3)] += count
    failures = Counter(c["status"] for c in clients if c["status"] != "ok")
    tablet_responses = at_end.get("vstream_responses", 0) - before.get("vstream_responses", 0)
    tablet_events = at_end.get("vstream_events", 0) - before.get("vstream_events", 0)
    if at_end:
        counted_by = "tablets"
        opened = at_end.get("vstream_opened", 0) - before.get("vstream_opened", 0)
    else:
        # The replay tablets count nothing: the gateway's own counters say
        # what it opened (sharing on: feeds and private streams; off: one per
        # shard stream).
        counted_by = "gateway metrics"
        if mode == "on":
            opened = metrics.get("vsmux_feeds_opened_total", 0) + metrics.get(
                "vsmux_feed_private_streams_total", 0
            )
        else:
            opened = metrics.get("vsmux_vstreams_created_total", 0)
    return {
        "clients": n,
        "mode": mode,
        "connected": len(ok),
        "failures": dict(failures),
        "window_s": window,
        "tablet_vstreams_opened": opened,
        "tablet_vstreams_counted_by": counted_by,
        "tablet_vstreams_open_at_end": at_end.get("vstream_open", float("nan")),
        "tablet_health_streams_open_at_end": at_end.get("health_open", float("nan")),
        # What the tablets sent on VStreams from the burst to the window's end.
        "tablet_responses": tablet_responses,
        "tablet_events": tablet_events,
        "tablet_events_per_response": (
            tablet_events / tablet_responses if tablet_responses else float("nan")
        ),
        "events_delivered": events,
        "gateway_cpu_s": gw_cpu,
        "gateway_cores": gw_cpu / elapsed,
        "gateway_cpu_us_per_event": 1e6 * gw_cpu / events if events else float("nan"),
        "tablet_cores": tab_cpu / elapsed,
        "client_cores": sum(r["cpu_s"] for r in results) / max(1e-9, window + args.warmup),
        "events_per_s_median": statistics.median(rates) if rates else float("nan"),
        "events_per_s_min": min(rates, default=float("nan")),
        "events_per_s_total": events / window,
        "max_gap_max_s": max((c["max_gap_s"] for c in ok), default=float("nan")),
        "latency_commits": sum(hist.values()),
        "latency_negative": sum(r["latency_negative"] for r in results),
        "latency_p50_ms": _pct_hist(hist, 0.50),
        "latency_p99_ms": _pct_hist(hist, 0.99),
        "latency_max_ms": max(hist, default=float("nan")),
        "gateway_metrics": metrics,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


_MEDIAN_KEYS = (
    "connected",
    "tablet_vstreams_opened",
    "tablet_vstreams_open_at_end",
    "tablet_events_per_response",
    "events_delivered",
    "gateway_cores",
    "gateway_cpu_us_per_event",
    "events_per_s_median",
    "events_per_s_min",
    "latency_p50_ms",
    "latency_p99_ms",
    "tablet_cores",
    "client_cores",
)


def aggregate(cells: list[dict[str, Any]], counts: list[int]) -> dict[str, Any]:
    medians: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for n in counts:
        for mode in MODES:
            runs = [c for c in cells if c["clients"] == n and c["mode"] == mode]
            if not runs:
                continue
            row: dict[str, Any] = {"clients": n, "mode": mode, "repeats": len(runs)}
            for key in _MEDIAN_KEYS:
                values = [float(r[key]) for r in runs if r[key] == r[key]]
                row[key] = statistics.median(values) if values else float("nan")
            medians.append(row)
        per_repeat = []
        for rep in sorted({c["repeat"] for c in cells}):
            pair = {c["mode"]: c for c in cells if c["clients"] == n and c["repeat"] == rep}
            if "on" in pair and "off" in pair:
                off = pair["off"]["gateway_cpu_us_per_event"]
                per_repeat.append(pair["on"]["gateway_cpu_us_per_event"] / off)
        on = [m for m in medians if m["clients"] == n and m["mode"] == "on"]
        off = [m for m in medians if m["clients"] == n and m["mode"] == "off"]
        ratios.append(
            {
                "clients": n,
                "cpu_per_event_on_over_off_per_repeat": per_repeat,
                "cpu_per_event_on_over_off_median": (
                    statistics.median(per_repeat) if per_repeat else float("nan")
                ),
                "cpu_per_event_ratio_of_medians": (
                    on[0]["gateway_cpu_us_per_event"] / off[0]["gateway_cpu_us_per_event"]
                    if on and off
                    else float("nan")
                ),
            }
        )
    return {"medians": medians, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", default="1,10,50", help="comma-separated client counts")
    p.add_argument("--repeats", type=int, default=3, help="cells per (N, mode)")
    p.add_argument("--rate", type=float, default=500.0, help="transactions/s over the keyspace")
    p.add_argument("--shards", default=SHARDS_4, help="the keyspace's shards")
    p.add_argument(
        "--tablets",
        choices=("cluster", "replay"),
        default="cluster",
        help="cluster: vsmux cluster (keyspace commerce; counts its streams); replay: "
        "load_tablets.py (keyspace bench; each 100 ms tick's transactions sent as one "
        "response on every stream, so both modes get the same batches)",
    )
    p.add_argument("--seconds", type=float, default=20.0, help="measured window")
    p.add_argument("--warmup", type=float, default=5.0, help="from the burst to the window")
    p.add_argument("--idle", type=float, default=2.0, help="gateway idle time before the burst")
    p.add_argument("--lead", type=float, default=2.0, help="client processes' start-up time")
    p.add_argument("--settle", type=float, default=5.0, help="cluster run time before the first")
    p.add_argument("--per-process", type=int, default=250, help="clients per client process")
    p.add_argument("--heartbeat-interval", type=int, default=1)
    p.add_argument("--gateway-arg", action="append", default=[], help="extra vsmux serve option")
    p.add_argument("--profile", action="store_true", help="py-spy the gateway (largest N, rep 1)")
    p.add_argument("--name", default="bench_sharing")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.clients.split(",") if x.strip()]
    info = machine_info()
    info["git_head"] = _git_head()
    cells: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vsmux-sharing-") as tmp:
        work = Path(tmp)
        topology = work / "topology.toml"
        counts_path = work / "tablet_counts.json"
        counts_file: Path | None = counts_path
        cluster_cmd = python_cmd(
            "_counting_cluster.py",
            "--counts",
            str(counts_path),
            "--",
            "--topology-out",
            str(topology),
            "--keyspace",
            "commerce",
            f"--shards={args.shards}",
            "--rate",
            str(args.rate),
        )
        if args.tablets == "replay":
            counts_file = None
            cluster_cmd = python_cmd(
                "load_tablets.py",
                "--tablets",
                str(len(args.shards.split(","))),
                "--rate",
                str(args.rate),
                "--topology",
                str(topology),
            )
        with spawn("tablets", cluster_cmd, work) as cluster:
            _wait_for_file(topology, 60)
            time.sleep(args.settle)
            turn = 0
            for rep in range(args.repeats):
                for n in counts:
                    order = MODES if turn % 2 == 0 else MODES[::-1]
                    turn += 1
                    for mode in order:
                        print(f"-- repeat {rep + 1}, {n} clients, sharing {mode}", file=sys.stderr)
                        profile = args.profile and rep == 0 and n == max(counts)
                        cell = one_cell(
                            args, n, mode, cluster, topology, counts_file, work, profile
                        )
                        cell["repeat"] = rep
                        cells.append(cell)
                        print(json.dumps(cell), file=sys.stderr, flush=True)
    summary = aggregate(cells, counts)
    print("\nEvery cell:")
    print_table(
        [
            "rep",
            "N",
            "share",
            "ok",
            "tablet VStreams",
            "gw cores",
            "gw us/event",
            "ev/s/client med",
            "min",
            "p99 ms",
            "tablet cores",
        ],
        [
            [
                c["repeat"] + 1,
                c["clients"],
                c["mode"],
                c["connected"],
                c["tablet_vstreams_opened"],
                c["gateway_cores"],
                c["gateway_cpu_us_per_event"],
                c["events_per_s_median"],
                c["events_per_s_min"],
                c["latency_p99_ms"],
                c["tablet_cores"],
            ]
            for c in cells
        ],
    )
    print(f"\nMedians over {args.repeats} repeats:")
    print_table(
        [
            "N",
            "share",
            "tablet VStreams opened",
            "events/tablet response",
            "gw CPU us/event",
            "gw cores",
            "events/s per client med",
            "min",
            "p50 ms",
            "p99 ms",
            "tablet cores",
            "client cores",
        ],
        [
            [
                m["clients"],
                m["mode"],
                m["tablet_vstreams_opened"],
                m["tablet_events_per_response"],
                m["gateway_cpu_us_per_event"],
                m["gateway_cores"],
                m["events_per_s_median"],
                m["events_per_s_min"],
                m["latency_p50_ms"],
                m["latency_p99_ms"],
                m["tablet_cores"],
                m["client_cores"],
            ]
            for m in summary["medians"]
        ],
    )
    print("\nGateway CPU per delivered event, sharing on / off (same repeat):")
    print_table(
        ["N", "per repeat", "median", "ratio of medians"],
        [
            [
                r["clients"],
                " ".join(f"{x:.2f}" for x in r["cpu_per_event_on_over_off_per_repeat"]),
                r["cpu_per_event_on_over_off_median"],
                r["cpu_per_event_ratio_of_medians"],
            ]
            for r in summary["ratios"]
        ],
    )
    top = [r for r in summary["ratios"] if r["clients"] == max(counts)]
    if top:
        ratio = top[0]["cpu_per_event_on_over_off_median"]
        verdict = "met" if ratio <= 0.5 else "missed"
        print(f"\ngoal at {max(counts)} clients (on/off <= 0.5): {verdict} ({ratio:.2f})")
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["run_seconds"] = round(time.monotonic() - started, 1)
    path = write_results(
        args.name,
        {"machine": info, "params": vars(args), "cells": cells, **summary},
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
