"""Gateway-side CPU per response: grpclib's ``send_message`` per response vs one batched write.

The gateway sends one unit per ``VStreamResponse``, so a busy stream writes
many small responses; ``vsmux.transport._batched_send.send_batch`` frames a batch
of them and writes it with one HTTP/2 ``send_data``. Two measurements:

1. **Loopback** (default). A server process hosted like the gateway (grpclib
   on trio-asyncio through ``vsmux.transport.open_grpc_server``, the raw
   codec) writes ``--n`` pre-encoded units in batches of ``--batch`` to a
   grpclib client in this process that reads every message, three ways:

   - ``coalesced``: each batch's units in ONE response, ``send_message``
     (the framing before one unit per response);
   - ``message``: one response per unit, ``send_message`` each;
   - ``batch``: one response per unit, one ``send_batch`` per batch.

   The server's CPU (``time.process_time`` read through a unary call just
   before and after each stream, so it includes writes still buffered when
   the handler returned) is divided by the units sent. Units: ``tx``, one
   transaction of the merge benchmark (BEGIN, 10 ROWs of ~300 bytes, GTID,
   COMMIT; ~3.2 KB), and ``heartbeat``, one HEARTBEAT event (~35 bytes).
   Modes run interleaved, rotating the order each round; medians over
   ``--runs`` rounds.

2. **End to end** (``--e2e``). K replay tablets (``--ks``, 4 by default) and
   four gateways on them (see ``_serve_variant.py``): ``vsmux serve`` as
   shipped (``batch``); with units sharing responses (``coalesced``, the
   framing before one unit per response, written the shipped way); with one
   ``send_message`` per response (``message``); and both
   (``coalesced-message``: the gateway before one unit per response). Each
   round reads each gateway for ``--seconds`` with the counting client (as
   ``bench_merge.py``): gateway CPU per event and per response, and what
   each added response costs: ``batch`` over ``coalesced``, ``message``
   over ``coalesced-message`` (CPU per event difference over responses per
   event difference, per round, then the median).

Writes ``benchmarks/results/bench_send.json`` (``--name``).

Usage: python benchmarks/bench_send.py [--n 20000] [--batch 64] [--runs 5]
       python benchmarks/bench_send.py --e2e [--ks 4] [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpclib.const
from grpclib.client import Channel
from grpclib.server import Server, Stream

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events import HEARTBEAT, ShardEvents, record
from _harness import (
    free_port,
    gateway_cmd,
    machine_info,
    print_table,
    proc_sample,
    python_cmd,
    spawn,
    wait_for_port,
    write_results,
)
from bench_merge import measured_client

from vsmux.transport._batched_send import send_batch
from vsmux.transport._codec import RawCodec, RawMessage

MODES = ("coalesced", "message", "batch")
UNITS = ("tx", "heartbeat")
STREAM_PATH = "/vsmux.bench.Send/Stream"
CPU_PATH = "/vsmux.bench.Send/Cpu"
# The gateway variants of the end-to-end part, as bench_merge's --gateway names them.
E2E_GATEWAYS = {
    "batch": "serve",
    "coalesced": "serve-coalesced",
    "message": "serve-messages",
    "coalesced-message": "serve-coalesced-messages",
}
# Each one-unit-per-response write path against the same path with units
# sharing responses: the difference is the cost of the added responses.
E2E_BASELINE = {"batch": "coalesced", "message": "coalesced-message"}


def unit_bodies() -> dict[str, bytes]:
    """One encoded VStreamResponse per unit kind (what the gateway sends per unit)."""
    events = ShardEvents("bench", "-80", seed=1)
    now = time.time_ns()
    ts = now // 10**9
    tx, _ = events.transaction(ts, now, events.rows_block(ts, now))
    return {"tx": tx, "heartbeat": record(events.simple(HEARTBEAT, ts, now))}


# --------------------------------------------------------------------------- server


class SendService:
    """Writes ``n`` units per call in the mode the request names."""

    def __init__(self) -> None:
        self.bodies = unit_bodies()

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {
            STREAM_PATH: grpclib.const.Handler(
                self.stream, grpclib.const.Cardinality.UNARY_STREAM, RawMessage, RawMessage
            ),
            CPU_PATH: grpclib.const.Handler(
                self.cpu, grpclib.const.Cardinality.UNARY_UNARY, RawMessage, RawMessage
            ),
        }

    async def cpu(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(str(time.process_time_ns()).encode())

    async def stream(self, stream: Stream[Any, Any]) -> None:
        request = json.loads(await stream.recv_message())
        mode: str = request["mode"]
        n: int = request["n"]
        size: int = request["batch"]
        body = self.bodies[request["unit"]]
        full = [body] * size
        # Coalesced: the batch's units as one response, built before timing
        # (the old gateway's packer built it instead of the per-unit bodies).
        joined = b"".join(full)
        sent = 0
        while sent < n:
            count = min(size, n - sent)
            bodies = full if count == size else full[:count]
            if mode == "batch":
                await send_batch(stream, bodies)
            elif mode == "message":
                for one in bodies:
                    await stream.send_message(one)
            else:
                await stream.send_message(joined if count == size else b"".join(bodies))
            sent += count


async def _serve_forever(hosted: Any, sleep: Any, max_seconds: float) -> None:
    async with hosted(SendService()) as port:
        print(json.dumps({"ready": True, "port": port}), flush=True)
        await sleep(max_seconds)


def serve_main(args: argparse.Namespace) -> int:
    try:
        if args.loop == "trio":
            import trio
            import trio_asyncio

            from vsmux.transport import open_grpc_server

            @contextlib.asynccontextmanager
            async def hosted(service: SendService) -> AsyncIterator[int]:
                async with open_grpc_server([service], codec=RawCodec()) as (_, port):
                    yield port

            async def trio_main() -> None:
                async with trio_asyncio.open_loop():
                    await _serve_forever(hosted, trio.sleep, args.max_seconds)

            trio.run(trio_main)
        else:

            @contextlib.asynccontextmanager
            async def plain(service: SendService) -> AsyncIterator[int]:
                server = Server([service], codec=RawCodec())
                await server.start("127.0.0.1", 0)
                try:
                    yield server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                finally:
                    server.close()

            asyncio.run(_serve_forever(plain, asyncio.sleep, args.max_seconds))
    except KeyboardInterrupt:
        pass
    return 0


# --------------------------------------------------------------------------- loopback client


async def _server_cpu_ns(channel: Channel) -> int:
    async with channel.request(
        CPU_PATH, grpclib.const.Cardinality.UNARY_UNARY, RawMessage, RawMessage
    ) as call:
        await call.send_message(b"", end=True)
        reply = await call.recv_message()
    return int(reply)


async def one_stream(channel: Channel, mode: str, unit: str, n: int, size: int) -> dict[str, Any]:
    request = json.dumps({"mode": mode, "unit": unit, "n": n, "batch": size}).encode()
    cpu0 = await _server_cpu_ns(channel)
    t0, c0 = time.perf_counter(), time.process_time()
    responses = nbytes = 0
    async with channel.request(
        STREAM_PATH, grpclib.const.Cardinality.UNARY_STREAM, RawMessage, RawMessage
    ) as call:
        await call.send_message(request, end=True)
        while True:
            body: bytes | None = await call.recv_message()
            if body is None:
                break
            responses += 1
            nbytes += len(body)
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - c0
    cpu1 = await _server_cpu_ns(channel)
    expected = math.ceil(n / size) if mode == "coalesced" else n
    if responses != expected:
        raise RuntimeError(f"{mode}/{unit}: got {responses} responses, expected {expected}")
    server_cpu = (cpu1 - cpu0) / 1e9
    return {
        "mode": mode,
        "unit": unit,
        "units": n,
        "responses": responses,
        "bytes": nbytes,
        "wall_s": wall,
        "server_cpu_s": server_cpu,
        "server_us_per_unit": server_cpu / n * 1e6,
        "server_us_per_response": server_cpu / responses * 1e6,
        "client_us_per_unit": client_cpu / n * 1e6,
        "server_cpu_util": server_cpu / wall,
    }


async def loopback_runs(port: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    channel = Channel("127.0.0.1", port, codec=RawCodec())
    runs: list[dict[str, Any]] = []
    try:
        units = [u for u in args.units.split(",") if u]
        for unit in units:
            for mode in MODES:  # warm-up, not kept
                await one_stream(channel, mode, unit, max(args.batch, args.n // 10), args.batch)
        for r in range(args.runs):
            for unit in units:
                order = MODES[r % 3 :] + MODES[: r % 3]
                for mode in order:
                    res = await one_stream(channel, mode, unit, args.n, args.batch)
                    res["round"] = r
                    runs.append(res)
            print(f"  round {r + 1}/{args.runs} done", flush=True)
    finally:
        channel.close()
    return runs


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def loopback_main(args: argparse.Namespace, info: dict[str, Any]) -> int:
    cmd = python_cmd("bench_send.py", "--serve", "--loop", args.loop, "--max-seconds", "3600")
    with (
        tempfile.TemporaryDirectory(prefix="vsmux-bench-") as tmp,
        spawn("server", cmd, Path(tmp)) as server,
    ):
        port = int(server.read_json_line(30)["port"])
        runs = asyncio.run(loopback_runs(port, args))
    units = [u for u in args.units.split(",") if u]
    medians: dict[str, dict[str, dict[str, float]]] = {}
    derived: dict[str, dict[str, float]] = {}
    rows = []
    for unit in units:
        medians[unit] = {}
        for mode in MODES:
            mine = [r for r in runs if r["unit"] == unit and r["mode"] == mode]
            medians[unit][mode] = {
                key: _median([float(r[key]) for r in mine])
                for key in (
                    "server_us_per_unit",
                    "server_us_per_response",
                    "client_us_per_unit",
                    "wall_s",
                    "server_cpu_util",
                    "bytes",
                    "responses",
                )
            }
        m = medians[unit]
        # Per round, so drift between rounds cancels; then the median.
        extra: dict[str, list[float]] = {"message": [], "batch": []}
        ratio: list[float] = []
        for r in range(args.runs):
            by_mode = {x["mode"]: x for x in runs if x["unit"] == unit and x["round"] == r}
            base = by_mode["coalesced"]
            for mode in ("message", "batch"):
                added = by_mode[mode]["responses"] - base["responses"]
                extra[mode].append(
                    (by_mode[mode]["server_cpu_s"] - base["server_cpu_s"]) / added * 1e6
                )
            ratio.append(
                by_mode["message"]["server_us_per_response"]
                / by_mode["batch"]["server_us_per_response"]
            )
        derived[unit] = {
            "extra_us_per_added_response_message": _median(extra["message"]),
            "extra_us_per_added_response_batch": _median(extra["batch"]),
            "message_over_batch_per_response": _median(ratio),
        }
        for mode in MODES:
            x = m[mode]
            rows.append(
                [
                    unit,
                    mode,
                    int(x["responses"]),
                    x["server_us_per_unit"],
                    x["server_us_per_response"],
                    "-"
                    if mode == "coalesced"
                    else derived[unit][f"extra_us_per_added_response_{mode}"],
                    x["client_us_per_unit"],
                    x["bytes"] / x["wall_s"] / 1e6,
                    f"{x['server_cpu_util']:.0%}",
                ]
            )
    print_table(
        [
            "unit",
            "mode",
            "responses",
            "server CPU us/unit",
            "us/response",
            "us per added response",
            "client CPU us/unit",
            "MB/s",
            "server CPU",
        ],
        rows,
    )
    for unit in units:
        print(
            f"{unit}: send_message / send_batch CPU per response = "
            f"{derived[unit]['message_over_batch_per_response']:.2f}x",
            flush=True,
        )
    path = write_results(
        args.name,
        {
            "benchmark": "bench_send",
            "part": "loopback",
            "machine": info,
            "config": {k: v for k, v in vars(args).items() if k != "func"},
            "median": medians,
            "derived": derived,
            "runs": runs,
        },
    )
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- end to end


def e2e_main(args: argparse.Namespace, info: dict[str, Any]) -> int:
    # measured_client reads these from its args.
    args.profile = False
    blocks = []
    with tempfile.TemporaryDirectory(prefix="vsmux-bench-") as tmp:
        work = Path(tmp)
        for k in [int(x) for x in args.ks.split(",") if x]:
            log_dir = work / f"k{k}"
            topo = work / f"topology-k{k}.toml"
            tablets_cmd = python_cmd(
                "replay_tablet.py",
                "--tablets",
                str(k),
                "--topology",
                str(topo),
                "--tx-per-response",
                str(args.tx_per_response),
                "--max-seconds",
                "3600",
            )
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in E2E_GATEWAYS}
            with contextlib.ExitStack() as stack:
                tablets = stack.enter_context(spawn("tablets", tablets_cmd, log_dir))
                ready = tablets.read_json_line(60)
                shards: list[str] = ready["shards"]
                gateways = {}
                for mode, kind in E2E_GATEWAYS.items():
                    port = free_port()
                    child = stack.enter_context(
                        spawn(f"gateway-{mode}", gateway_cmd(kind, topo, port), log_dir)
                    )
                    gateways[mode] = (port, child)
                for port, child in gateways.values():
                    wait_for_port(port, child, timeout=60)
                modes = list(E2E_GATEWAYS)
                for r in range(args.runs):
                    order = modes[r % len(modes) :] + modes[: r % len(modes)]
                    line = []
                    for mode in order:
                        port, child = gateways[mode]
                        res = measured_client(args, port, child.pid, tablets.pid, shards, log_dir)
                        res["round"] = r
                        runs[mode].append(res)
                        line.append(f"{mode} {res.get('events_per_s', 0):,.0f} ev/s")
                    print(f"  K={k} round {r + 1}: " + ", ".join(line), flush=True)
                peaks = {m: proc_sample(c.pid).hwm_bytes / 1e6 for m, (_, c) in gateways.items()}
            blocks.append(_e2e_block(k, runs, peaks, args.runs))
    rows = []
    for b in blocks:
        for mode in E2E_GATEWAYS:
            m = b["median"][mode]
            rows.append(
                [
                    b["k"],
                    mode,
                    m["events_per_s"],
                    m["responses_per_s"],
                    m["server_cpu_s_per_m_events"],
                    m["server_us_per_response"],
                    b["derived"].get(f"extra_us_per_added_response_{mode}", "-"),
                    m["events_per_s"] / b["median"]["coalesced-message"]["events_per_s"],
                    f"{m['server_cpu_util']:.0%}",
                    f"{m['other_cpu_cores']:.2f}",
                    f"{b['ok'][mode]}/{args.runs}",
                ]
            )
    print_table(
        [
            "K",
            "framing",
            "events/s",
            "responses/s",
            "gw CPU s/M ev",
            "gw CPU us/response",
            "us per added response",
            "vs coalesced-message",
            "gw CPU",
            "other CPU",
            "ok",
        ],
        rows,
    )
    path = write_results(
        args.name,
        {
            "benchmark": "bench_send",
            "part": "e2e",
            "machine": info,
            "config": {k: v for k, v in vars(args).items() if k != "func"},
            "blocks": blocks,
        },
    )
    print(f"wrote {path}")
    return 0


def _e2e_block(
    k: int, runs: dict[str, list[dict[str, Any]]], peaks: dict[str, float], rounds: int
) -> dict[str, Any]:
    ok = {mode: [r for r in rs if r["status"] == "ok"] for mode, rs in runs.items()}
    median: dict[str, dict[str, float]] = {}
    for mode, rs in ok.items():
        for r in rs:
            r["server_us_per_response"] = r["server_cpu_s"] / max(1, r["responses"]) * 1e6
            r["responses_per_event"] = r["responses"] / max(1, r["events"])
        median[mode] = {
            key: _median([float(r[key]) for r in rs if key in r])
            for key in (
                "events_per_s",
                "responses_per_s",
                "server_cpu_s_per_m_events",
                "server_us_per_response",
                "responses_per_event",
                "server_cpu_util",
                "other_cpu_cores",
            )
        }
    derived: dict[str, float] = {}
    for mode, baseline in E2E_BASELINE.items():
        values = []
        for rnd in range(rounds):
            mine = [x for x in ok[mode] if x["round"] == rnd]
            base = [x for x in ok[baseline] if x["round"] == rnd]
            if not mine or not base:
                continue
            a, b = mine[0], base[0]
            # CPU per event difference over responses-per-event difference.
            d_cpu = a["server_cpu_s"] / a["events"] - b["server_cpu_s"] / b["events"]
            d_resp = a["responses_per_event"] - b["responses_per_event"]
            values.append(d_cpu / d_resp * 1e6)
        derived[f"extra_us_per_added_response_{mode}"] = _median(values)
    return {
        "k": k,
        "runs": runs,
        "median": median,
        "derived": derived,
        "gateway_peak_rss_mb": peaks,
        "ok": {mode: len(rs) for mode, rs in ok.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--loop", choices=["trio", "asyncio"], default="trio", help="server hosting")
    p.add_argument("--max-seconds", type=float, default=3600.0, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=20000, help="loopback: units per stream")
    p.add_argument("--batch", type=int, default=64, help="loopback: units per write")
    p.add_argument("--units", default=",".join(UNITS), help="loopback: tx,heartbeat")
    p.add_argument("--runs", type=int, default=0, help="rounds (default: 5 loopback, 3 e2e)")
    p.add_argument("--e2e", action="store_true", help="end to end through vsmux serve")
    p.add_argument("--ks", default="4", help="e2e: tablet counts")
    p.add_argument("--tx-per-response", type=int, default=8, help="e2e: per tablet response")
    p.add_argument("--warmup", type=float, default=2.0, help="e2e: per run")
    p.add_argument("--seconds", type=float, default=5.0, help="e2e: measured window per run")
    p.add_argument("--name", default="", help="results file name (no .json)")
    args = p.parse_args(argv)
    if args.serve:
        return serve_main(args)
    info = machine_info()
    if not args.name:
        args.name = "bench_send_e2e" if args.e2e else "bench_send"
    if args.runs <= 0:
        args.runs = 3 if args.e2e else 5
    print(
        f"bench_send ({'end to end' if args.e2e else 'loopback'}): {info['nproc']} cores, "
        f"{info['cpu_model']}, Python {info['python']}, {info['date_utc']}, "
        f"load {info['loadavg_at_start']}",
        flush=True,
    )
    if args.e2e:
        return e2e_main(args, info)
    return loopback_main(args, info)


if __name__ == "__main__":
    sys.exit(main())
