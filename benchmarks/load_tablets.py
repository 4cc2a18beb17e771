"""Paced tablets that stay cheap with thousands of streams, for ``bench_load.py --tablets replay``.

``vsmux cluster`` builds every stream's events from its binlog per stream,
and its workload runs in the same process: on a 2-core machine it cannot
feed more than a few dozen streams at 500 transactions/s, so with many
clients it, not the gateway, sets the pace. These tablets do the per-stream
work once per tablet instead:

- every ``--tick`` seconds each tablet encodes the transactions due since
  the last tick (``--rate`` transactions/s over all tablets; vttablet-shaped
  events from ``_events.py``: BEGIN, 10 ROWs of ~300 bytes, GTID, COMMIT) as
  ONE response body and keeps it in a ring of ``--retain`` seconds;
- every stream sends the same bodies, from where it joined: one
  ``[GTID, OTHER]`` response first (as a vttablet starting at ``current``),
  then each tick's body. A stream that falls behind sends what it missed,
  joined into responses of up to ~250 KB (a vttablet's packet size); one that
  falls out of the ring ends with FAILED_PRECONDITION, which its client
  reports.

``StreamHealth`` reports a serving primary. Writes the topology TOML
(``--topology``) and prints ``{"ready": true, ...}`` once every tablet listens.

Usage: python benchmarks/load_tablets.py --tablets 4 --rate 500 --topology /tmp/t.toml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import grpclib.const
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events import ROWS_PER_TX, RawMessage, ShardEvents, record
from replay_tablet import CELL, KEYSPACE, shard_names, topology_toml

from vsmux.proto import binlogdata, query, topodata

OTHER = 11
PACKET_BYTES = 250_000


class PacedTablet:
    """One tablet: a ticker encoding each tick's transactions once, and its streams."""

    def __init__(self, index: int, shard: str, args: argparse.Namespace) -> None:
        self.index = index
        self.shard = shard
        self.args = args
        self.events = ShardEvents(KEYSPACE, shard, seed=args.seed)
        self.ring: deque[tuple[int, bytes]] = deque()
        self.last = 0  # index of the newest body
        self._tick = asyncio.Event()

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

    async def run_ticker(self, t0: float) -> None:
        per_tablet = self.args.rate / self.args.tablets
        tick = self.args.tick
        keep = max(1, round(self.args.retain / tick))
        # Tablets tick out of phase, so the gateway sees a steady total rate.
        next_at = t0 + tick * self.index / self.args.tablets
        due = 0.0
        rows = b""
        loop = asyncio.get_running_loop()
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += tick
            due += per_tablet * tick
            count = int(due)
            due -= count
            if count == 0:
                continue
            now = time.time_ns()
            ts = now // 10**9
            if not rows:
                rows = self.events.rows_block(ts, now, ROWS_PER_TX)
            body = self.events.transactions(ts, now, rows, count)
            self.last += 1
            self.ring.append((self.last, body))
            if len(self.ring) > keep:
                self.ring.popleft()
            wake, self._tick = self._tick, asyncio.Event()
            wake.set()

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
        while True:
            await stream.send_message(report)
            await asyncio.sleep(5.0)

    async def vstream(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        cursor = self.last  # "current": everything after what is already committed
        now = time.time_ns()
        ts = now // 10**9
        # The GTID event of the current position (gtid() encodes the next one).
        self.events.gtid_seq -= 1
        gtid = self.events.gtid(ts, now)
        await stream.send_message(
            RawMessage(record(gtid) + record(self.events.simple(OTHER, ts, now)))
        )
        while True:
            while self.last <= cursor:
                await self._tick.wait()
            if not self.ring or self.ring[0][0] > cursor + 1:
                raise GRPCError(
                    grpclib.const.Status.FAILED_PRECONDITION,
                    f"stream fell more than {self.args.retain:g}s behind (purged)",
                )
            start = cursor + 1 - self.ring[0][0]
            pending = [body for _, body in list(self.ring)[start:]]
            cursor = self.last
            chunk: list[bytes] = []
            size = 0
            for body in pending:
                if chunk and size + len(body) > PACKET_BYTES:
                    await stream.send_message(RawMessage(b"".join(chunk)))
                    chunk, size = [], 0
                chunk.append(body)
                size += len(body)
            await stream.send_message(RawMessage(chunk[0] if len(chunk) == 1 else b"".join(chunk)))


async def main_async(args: argparse.Namespace) -> None:
    shards = shard_names(args.tablets)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.5
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    servers: list[Server] = []
    tickers = []
    ports = []
    for i, shard in enumerate(shards):
        tablet = PacedTablet(i, shard, args)
        server = Server([tablet])
        await server.start("127.0.0.1", 0, backlog=4096)
        servers.append(server)
        ports.append(server._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        tickers.append(asyncio.create_task(tablet.run_ticker(t0)))
    if args.topology:
        # Written once, before anyone connects: blocking here is harmless.
        Path(args.topology).write_text(topology_toml(shards, ports))  # noqa: ASYNC240
    print(json.dumps({"ready": True, "ports": ports, "shards": shards}), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    for task in tickers:
        task.cancel()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tablets", type=int, default=4)
    p.add_argument("--rate", type=float, default=500.0, help="transactions/s over all tablets")
    p.add_argument("--tick", type=float, default=0.1, help="seconds between a tablet's bodies")
    p.add_argument("--retain", type=float, default=120.0, help="seconds of bodies kept")
    p.add_argument("--topology", default="")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=3600.0)
    args = p.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
