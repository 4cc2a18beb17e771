"""End-to-end merge throughput: K replay tablets -> vsmux gateway -> counting client.

Three processes per measurement: the replay tablets (``replay_tablet.py``, K
servers in one process), the gateway (``python -m vsmux serve``) and the
counting client (``count_client.py``). Next to every gateway run the relay
ceiling (``relay.py``: the same grpclib/trio-asyncio stack forwarding tablet 0,
cut into one response per unit and written in batches as the gateway does;
``--relay-mode forward`` forwards tablet responses untouched, the relay before
one unit per response) is measured against the same tablets, so the ratio
compares like with like on a noisy machine.

Per K: events/s, MB/s, responses/s at the client; gateway CPU seconds per
million events (``/proc/<pid>/stat`` utime+stime over the measured window);
gateway peak RSS (VmHWM); medians of ``--runs`` runs. Prints a table and writes
``benchmarks/results/bench_merge.json``.

Usage: python benchmarks/bench_merge.py [--ks 1,4,16,64] [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    GATEWAY_KINDS,
    RESULTS_DIR,
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
from _profile import profile_window


def measured_client(
    args: argparse.Namespace,
    port: int,
    server_pid: int,
    tablets_pid: int,
    shards: list[str],
    log_dir: Path,
    profile_out: Path | None = None,
) -> dict[str, Any]:
    """One client run; adds the server's and the tablets' CPU over the measured window."""
    marks: dict[str, Any] = {}
    profiler: list[Any] = []

    def on_event(event: str) -> None:
        if event == "measure_start":
            marks["t0"] = time.monotonic()
            marks["s0"] = proc_sample(server_pid)
            marks["k0"] = proc_sample(tablets_pid)
            marks["m0"] = machine_busy_seconds()
            if profile_out is not None:
                profiler.append(profile_window(server_pid, args.seconds, profile_out))
        elif event == "measure_end":
            marks["t1"] = time.monotonic()
            marks["s1"] = proc_sample(server_pid)
            marks["k1"] = proc_sample(tablets_pid)
            marks["m1"] = machine_busy_seconds()

    cmd = python_cmd(
        "count_client.py",
        "--port",
        str(port),
        "--warmup",
        str(args.warmup),
        "--seconds",
        str(args.seconds),
        "--shards=" + ",".join(shards),
        "--max-seconds",
        str(args.warmup + args.seconds + 60),
    )
    try:
        result = run_client(cmd, on_event, timeout=args.warmup + args.seconds + 90, log_dir=log_dir)
    finally:
        for p in profiler:
            p.finish()
    if "s1" in marks:
        wall = marks["t1"] - marks["t0"]
        cpu = marks["s1"].cpu_seconds - marks["s0"].cpu_seconds
        result["server_cpu_s"] = cpu
        result["server_cpu_util"] = cpu / wall if wall > 0 else float("nan")
        result["tablets_cpu_util"] = (
            (marks["k1"].cpu_seconds - marks["k0"].cpu_seconds) / wall if wall > 0 else float("nan")
        )
        result["server_cpu_s_per_m_events"] = (
            cpu / result["events"] * 1e6 if result.get("events") else float("nan")
        )
        result["server_cpu_us_per_response"] = (
            cpu / result["responses"] * 1e6 if result.get("responses") else float("nan")
        )
        result["client_cpu_util"] = result.get("client_cpu_s", 0.0) / (
            args.warmup + result["window_s"]
        )
        # Every core's busy time over the window, and what is left of it after
        # this run's own processes (the client's share is over its whole run):
        # CPU other work took from the benchmark.
        busy = (marks["m1"] - marks["m0"]) / wall if wall > 0 else float("nan")
        result["machine_busy_cores"] = busy
        result["other_cpu_cores"] = max(
            0.0,
            busy
            - result["server_cpu_util"]
            - result["tablets_cpu_util"]
            - result["client_cpu_util"],
        )
    return result


def run_block(args: argparse.Namespace, k: int, work: Path) -> dict[str, Any]:
    """Tablets, gateway and relay for one K; alternating relay and gateway runs."""
    log_dir = work / f"k{k}"
    topo = work / f"topology-k{k}.toml"
    block: dict[str, Any] = {"k": k, "runs": [], "relay_runs": []}
    # The machine is shared: what else ran shows in the load around each block.
    block["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    tablets_cmd = python_cmd(
        "replay_tablet.py",
        "--tablets",
        str(k),
        "--topology",
        str(topo),
        "--tx-per-response",
        str(args.tx_per_response),
        "--loop",
        args.tablet_loop,
        "--max-seconds",
        "3600",
    )
    with spawn("tablets", tablets_cmd, log_dir) as tablets:
        ready = tablets.read_json_line(60)
        shards: list[str] = ready["shards"]
        tablet0 = f"127.0.0.1:{ready['ports'][0]}"
        relay_cmd = python_cmd(
            "relay.py",
            "--tablet",
            tablet0,
            "--shard",
            shards[0],
            "--mode",
            args.relay_mode,
            "--max-seconds",
            "3600",
        )
        with spawn("relay", relay_cmd, log_dir) as relay:
            relay_port = int(relay.read_json_line(30)["port"])
            gw_port = free_port()
            gw_cmd = gateway_cmd(args.gateway, topo, gw_port, args.gateway_arg)
            with spawn("gateway", gw_cmd, log_dir) as gateway:
                wait_for_port(gw_port, gateway, timeout=60)
                block["gateway_rss_idle_mb"] = proc_sample(gateway.pid).rss_bytes / 1e6
                for r in range(args.runs):
                    rr = measured_client(
                        args, relay_port, relay.pid, tablets.pid, shards[:1], log_dir
                    )
                    block["relay_runs"].append(rr)
                    profile_out = None
                    if args.profile and r == args.runs - 1:
                        profile_out = RESULTS_DIR / f"profile_merge_k{k}.txt"
                    gr = measured_client(
                        args, gw_port, gateway.pid, tablets.pid, shards, log_dir, profile_out
                    )
                    block["runs"].append(gr)
                    print(
                        f"  K={k} run {r + 1}: vsmux {gr.get('events_per_s', 0):,.0f} ev/s "
                        f"({gr['status']}), relay {rr.get('events_per_s', 0):,.0f} ev/s",
                        flush=True,
                    )
                block["gateway_peak_rss_mb"] = proc_sample(gateway.pid).hwm_bytes / 1e6
    block["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    ok = [r for r in block["runs"] if r["status"] == "ok"]
    ok_relay = [r for r in block["relay_runs"] if r["status"] == "ok"]
    med: dict[str, float] = {}
    for key in (
        "events_per_s",
        "mb_per_s",
        "responses_per_s",
        "server_cpu_s_per_m_events",
        "server_cpu_us_per_response",
        "server_cpu_util",
        "tablets_cpu_util",
        "client_cpu_util",
        "other_cpu_cores",
    ):
        med[key] = median_of(ok, key)
    med["relay_events_per_s"] = median_of(ok_relay, "events_per_s")
    med["relay_mb_per_s"] = median_of(ok_relay, "mb_per_s")
    med["relay_cpu_s_per_m_events"] = median_of(ok_relay, "server_cpu_s_per_m_events")
    med["relay_responses_per_s"] = median_of(ok_relay, "responses_per_s")
    med["relay_cpu_us_per_response"] = median_of(ok_relay, "server_cpu_us_per_response")
    med["ratio_to_relay"] = med["events_per_s"] / med["relay_events_per_s"]
    # Contention-proof companion: CPU per event of the relay over the gateway's.
    med["cpu_ratio_to_relay"] = med["relay_cpu_s_per_m_events"] / med["server_cpu_s_per_m_events"]
    block["median"] = med
    block["ok_runs"] = len(ok)
    return block


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ks", default="1,4,16,64", help="tablet counts to measure")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=5.0, help="measured window per run")
    p.add_argument(
        "--tx-per-response",
        type=int,
        default=8,
        help="transactions per tablet response (~30 KB at 8; 1 = a vttablet flushing on "
        "every COMMIT of small transactions)",
    )
    p.add_argument("--tablet-loop", choices=["asyncio", "trio"], default="asyncio")
    p.add_argument(
        "--relay-mode",
        choices=["units", "forward"],
        default="units",
        help="units: one response per unit, batched writes (the gateway's work); "
        "forward: tablet responses untouched",
    )
    p.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        help="extra argument for `vsmux serve` (repeatable), e.g. --gateway-arg=--foo=1",
    )
    p.add_argument(
        "--gateway",
        choices=GATEWAY_KINDS,
        default="serve",
        help="serve: `python -m vsmux serve`; shim: benchmarks/_gateway_shim.py; "
        "serve-<framing>: `vsmux serve` with units sharing responses and/or one "
        "send_message per response (benchmarks/_serve_variant.py)",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the last gateway run per K")
    p.add_argument("--name", default="bench_merge", help="results file name (no .json)")
    p.add_argument("--log-dir", default="", help="keep topology files and process logs here")
    args = p.parse_args(argv)
    ks = [int(x) for x in args.ks.split(",") if x]
    info = machine_info()
    print(
        f"bench_merge: {info['nproc']} cores, {info['cpu_model']}, {info['date_utc']}, "
        f"{args.tx_per_response} tx/response, {args.runs} runs x {args.seconds}s, "
        f"relay {args.relay_mode}, load {info['loadavg_at_start']}",
        flush=True,
    )
    blocks = []
    with tempfile.TemporaryDirectory(prefix="vsmux-bench-") as tmp:
        work = Path(args.log_dir) if args.log_dir else Path(tmp)
        for k in ks:
            blocks.append(run_block(args, k, work))
    rows = []
    k4 = next((b["median"]["events_per_s"] for b in blocks if b["k"] == 4), float("nan"))
    for b in blocks:
        m = b["median"]
        rows.append(
            [
                b["k"],
                m["events_per_s"],
                m["mb_per_s"],
                m["responses_per_s"],
                m["server_cpu_s_per_m_events"],
                m["server_cpu_us_per_response"],
                b["gateway_peak_rss_mb"],
                m["relay_events_per_s"],
                m["ratio_to_relay"],
                m["relay_cpu_s_per_m_events"],
                m["cpu_ratio_to_relay"],
                m["events_per_s"] / k4,
                f"{m['server_cpu_util']:.0%}/{m['tablets_cpu_util']:.0%}/{m['client_cpu_util']:.0%}",
                f"{b['ok_runs']}/{args.runs}",
                f"{m['other_cpu_cores']:.2f}",
            ]
        )
    print_table(
        [
            "K",
            "events/s",
            "MB/s",
            "responses/s",
            "gw CPU s/M ev",
            "gw CPU us/resp",
            "gw peak RSS MB",
            "relay events/s",
            "vsmux/relay",
            "relay CPU s/M ev",
            "CPU relay/vsmux",
            "vs K=4",
            "CPU gw/tablets/client",
            "ok",
            "other CPU",
        ],
        rows,
    )
    path = write_results(
        args.name,
        {
            "benchmark": "bench_merge",
            "machine": info,
            "config": {k: v for k, v in vars(args).items()},
            "blocks": blocks,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
