"""Replay tablets: K tiny ``/queryservice.Query`` servers in one process, one port each.

Each serves ``VStream`` from pre-encoded, vttablet-shaped ROW-heavy transactions
(see ``_events.py``) and ``StreamHealth`` (serving primary). Modes:

- ``flood``: whole transactions as fast as the client reads (flow control is
  the only pacing); ``--tx-per-response`` transactions per response (1, as a
  vttablet sends under load: it flushes on every COMMIT).
- ``paced``: ``--rate`` transactions/s over all tablets, evenly phased, each
  stamped with its commit time (``timestamp`` s, ``current_time`` ns) when sent.
- ``idle``: heartbeats only.

``--huge-bytes N`` makes tablet 0 open each stream with one transaction of N
bytes of ROW events, generated lazily in ~256 KB responses (one reused block),
so the tablet never holds it.

Writes a topology TOML for the gateway (``--topology``) and prints one JSON line
``{"ready": true, "ports": [...]}`` once every tablet listens. Stops on SIGINT
or after ``--max-seconds``.

Usage: python benchmarks/replay_tablet.py --tablets 4 --topology /tmp/t.toml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpclib.const
from grpclib.server import Server, Stream

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events import (
    BEGIN,
    COMMIT,
    HEARTBEAT,
    ROWS_PER_TX,
    RawMessage,
    ShardEvents,
    record,
)

from vsmux.proto import binlogdata, query, topodata

KEYSPACE = "bench"
CELL = "zone1"
HEARTBEAT_SECONDS = 0.9
# A vttablet splits a big transaction into responses of about this size.
HUGE_CHUNK_BYTES = 256 * 1024


def shard_names(k: int) -> list[str]:
    """``k`` contiguous key-range shards covering the keyspace (k divides 256)."""
    if k == 1:
        return ["0"]
    if 256 % k:
        raise SystemExit(f"--tablets must divide 256, got {k}")
    step = 256 // k
    bounds = [""] + [f"{i * step:02x}" for i in range(1, k)] + [""]
    return [f"{bounds[i]}-{bounds[i + 1]}" for i in range(k)]


def topology_toml(shards: list[str], ports: list[int]) -> str:
    lines = [f'cell = "{CELL}"', "", f"[keyspaces.{KEYSPACE}]"]
    lines.append("shards = [" + ", ".join(f'"{s}"' for s in shards) + "]")
    for i, (shard, port) in enumerate(zip(shards, ports, strict=True)):
        lines += [
            "",
            "[[tablets]]",
            f'keyspace = "{KEYSPACE}"',
            f'shard = "{shard}"',
            f'cell = "{CELL}"',
            'type = "primary"',
            f"uid = {100 + i}",
            f'address = "127.0.0.1:{port}"',
        ]
    return "\n".join(lines) + "\n"


def _start_seq(position: str) -> int:
    # Resume after "MySQL56/<uuid>:1-N"; anything else starts at 0.
    _, sep, tail = position.rpartition(":1-")
    return int(tail) if sep and tail.isdigit() else 0


class ReplayTablet:
    """One replay tablet's handlers (grpclib ``__mapping__``)."""

    def __init__(self, index: int, shard: str, args: argparse.Namespace, t0: float) -> None:
        self.index = index
        self.shard = shard
        self.args = args
        self.t0 = t0  # shared pacing origin
        self.deadline = time.monotonic() + args.max_seconds

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {
            "/queryservice.Query/VStream": grpclib.const.Handler(
                self.vstream,
                grpclib.const.Cardinality.UNARY_STREAM,
                binlogdata.VStreamRequest,
                RawMessage,
            ),
            "/queryservice.Query/StreamHealth": grpclib.const.Handler(
                self.stream_health,
                grpclib.const.Cardinality.UNARY_STREAM,
                query.StreamHealthRequest,
                query.StreamHealthResponse,
            ),
        }

    async def stream_health(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        report = query.StreamHealthResponse(
            target=query.Target(
                keyspace=KEYSPACE,
                shard=self.shard,
                tablet_type=topodata.TabletType.PRIMARY,
                cell=CELL,
            ),
            serving=True,
            tablet_alias=topodata.TabletAlias(cell=CELL, uid=100 + self.index),
            realtime_stats=query.RealtimeStats(),
        )
        while time.monotonic() < self.deadline:
            await stream.send_message(report)
            await asyncio.sleep(5.0)

    async def vstream(self, stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        assert request is not None
        events = ShardEvents(KEYSPACE, self.shard, seed=self.args.seed)
        events.gtid_seq = _start_seq(request.position)
        if self.args.huge_bytes and self.index == 0:
            async for body in self._huge(events):
                await stream.send_message(RawMessage(body))
        mode = self.args.mode
        source = (
            self._flood(events)
            if mode == "flood"
            else self._paced(events)
            if mode == "paced"
            else self._idle(events)
        )
        async for body in source:
            await stream.send_message(RawMessage(body))

    async def _flood(self, events: ShardEvents) -> AsyncIterator[bytes]:
        n = self.args.tx_per_response
        now = time.time_ns()
        rows = events.rows_block(now // 10**9, now)
        first, _ = events.transaction(now // 10**9, now, rows, with_field=True)
        yield first
        checks = 0
        while True:
            # Stamp to the millisecond so BEGIN/COMMIT encodings are reused within it.
            now = time.time_ns() // 1_000_000 * 1_000_000
            yield events.transactions(now // 10**9, now, rows, n)
            checks += 1
            if checks & 255 == 0 and time.monotonic() > self.deadline:
                return

    async def _paced(self, events: ShardEvents) -> AsyncIterator[bytes]:
        k = self.args.tablets
        per_tablet = self.args.rate / k
        interval = 1.0 / per_tablet
        # Phase tablets evenly so the merged stream is a steady total rate; a
        # stream opened later starts at the next period (no catch-up burst).
        periods = max(0, math.ceil((time.monotonic() - self.t0) / interval))
        next_at = self.t0 + periods * interval + self.index * interval / k
        first = True
        loop = asyncio.get_running_loop()
        while time.monotonic() < self.deadline:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
            now = time.time_ns()
            ts = now // 10**9
            rows = events.rows_block(ts, now)
            body, _ = events.transaction(ts, now, rows, ROWS_PER_TX, with_field=first)
            first = False
            yield body

    async def _idle(self, events: ShardEvents) -> AsyncIterator[bytes]:
        while time.monotonic() < self.deadline:
            now = time.time_ns()
            yield record(events.simple(HEARTBEAT, now // 10**9, now))
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _huge(self, events: ShardEvents) -> AsyncIterator[bytes]:
        now = time.time_ns()
        ts = now // 10**9
        row = record(events.row(ts, now))
        block = row * max(1, HUGE_CHUNK_BYTES // len(row))
        head = record(events.simple(BEGIN, ts, now)) + record(events.field(ts, now))
        sent = 0
        yield head + block
        sent += len(block)
        while sent < self.args.huge_bytes and time.monotonic() < self.deadline:
            yield block
            sent += len(block)
        yield record(events.gtid(ts, now)) + record(events.simple(COMMIT, ts, now))


async def serve(args: argparse.Namespace, host_server: Any) -> None:
    """Start every tablet with ``host_server``, announce, then wait for the deadline."""
    shards = shard_names(args.tablets)
    t0 = time.monotonic() + 0.5
    async with contextlib.AsyncExitStack() as stack:
        ports = []
        for i, shard in enumerate(shards):
            tablet = ReplayTablet(i, shard, args, t0)
            ports.append(await stack.enter_async_context(host_server(tablet)))
        if args.topology:
            # Written once, before anyone connects: blocking here is harmless.
            Path(args.topology).write_text(topology_toml(shards, ports))  # noqa: ASYNC240
        print(json.dumps({"ready": True, "ports": ports, "shards": shards}), flush=True)
        await args.sleep(args.max_seconds)


@contextlib.asynccontextmanager
async def _asyncio_server(tablet: ReplayTablet) -> AsyncIterator[int]:
    server = Server([tablet])
    await server.start("127.0.0.1", 0)
    try:
        yield server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tablets", type=int, default=4)
    p.add_argument("--topology", default="")
    p.add_argument("--mode", choices=["flood", "paced", "idle"], default="flood")
    p.add_argument("--tx-per-response", type=int, default=1)
    p.add_argument("--rate", type=float, default=1000.0, help="paced: total transactions/s")
    p.add_argument("--huge-bytes", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=900.0)
    p.add_argument(
        "--loop",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="asyncio: plain asyncio grpclib; trio: hosted like the gateway (trio-asyncio)",
    )
    args = p.parse_args(argv)
    try:
        if args.loop == "asyncio":
            args.sleep = asyncio.sleep
            asyncio.run(serve(args, _asyncio_server))
        else:
            import trio
            import trio_asyncio

            from vsmux.transport import open_grpc_server

            @contextlib.asynccontextmanager
            async def hosted(tablet: ReplayTablet) -> AsyncIterator[int]:
                async with open_grpc_server([tablet]) as (_, port):
                    yield port

            async def trio_main() -> None:
                async with trio_asyncio.open_loop():
                    await serve(args, hosted)

            args.sleep = trio.sleep
            trio.run(trio_main)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
