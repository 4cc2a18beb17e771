"""Merge throughput of one session, in process: no network, no gRPC.

Eight in-process sources replay pre-encoded, ROW-heavy transactions (BEGIN,
10 ROWs of ~300 bytes, GTID, COMMIT) as tablet responses of
``--batch-transactions`` transactions each. Each response is kept as encoded
bytes and split into frames by the source when it is sent, as the gRPC tablet
client does, so every event is a fresh frame. A real session
(:func:`vsmux.mux.run_vstream`: grouping, table renames, VGTIDs, packing)
merges them into a sink that only counts bytes.

Usage: .venv/bin/python benchmarks/bench_merge_inproc.py [--runs 3] [--transactions 4000]
       [--profile]

Prints events/s and MB/s per run and the median, both per wall-clock second
and per CPU second of the process (the benchmark is single-threaded, so the
CPU figure is the one that survives a busy machine), and writes
``benchmarks/results/bench_merge_inproc.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, run_vstream
from vsmux.proto import binlogdata, query, topodata, vtgate
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology
from vsmux.wire import Frame, encode_response, frame_of, split_response
from vsmux.wire.accel import ACCELERATED

SHARDS = ["-20", "20-40", "40-60", "60-80", "80-a0", "a0-c0", "c0-e0", "e0-"]
ROWS_PER_TX = 10
EVENTS_PER_TX = ROWS_PER_TX + 3  # BEGIN, ROWs, GTID, COMMIT
VARIANTS = 32  # distinct encoded responses per shard, replayed in turn


def _event(kind: binlogdata.VEventType, shard: str, **kw: object) -> Frame:
    return frame_of(
        binlogdata.VEvent(
            type=kind,
            timestamp=1_700_000_000,
            current_time=1_700_000_000_500_000_000,
            keyspace="commerce",
            shard=shard,
            **kw,  # type: ignore[arg-type]
        )
    )


def _row(shard: str, n: int) -> Frame:
    values = [str(n).encode(), str(n * 7).encode(), b"sku-%08d" % n, b"123.45", b"n" * 200]
    return _event(
        binlogdata.VEventType.ROW,
        shard,
        row_event=binlogdata.RowEvent(
            table_name="orders",
            keyspace="commerce",
            shard=shard,
            row_changes=[
                binlogdata.RowChange(
                    after=query.Row(lengths=[len(v) for v in values], values=b"".join(values))
                )
            ],
        ),
    )


def _responses(shard: str, per_batch: int) -> list[bytes]:
    """``VARIANTS`` encoded tablet responses of ``per_batch`` transactions each."""
    bodies = []
    seq = 0
    for _ in range(VARIANTS):
        frames = []
        for _ in range(per_batch):
            seq += 1
            frames.append(_event(binlogdata.VEventType.BEGIN, shard))
            frames += [_row(shard, seq * 10 + i) for i in range(ROWS_PER_TX)]
            frames.append(
                _event(binlogdata.VEventType.GTID, shard, gtid=f"MySQL56/{shard}-uuid:1-{seq}")
            )
            frames.append(_event(binlogdata.VEventType.COMMIT, shard))
        bodies.append(encode_response(frames))
    return bodies


class ReplaySource:
    """A ShardSource that replays ``count`` responses, then idles."""

    def __init__(self, tablet: TabletInfo, bodies: list[bytes], count: int) -> None:
        self._tablet = tablet
        self._bodies = bodies
        self._count = count

    @property
    def tablet(self) -> TabletInfo:
        return self._tablet

    @asynccontextmanager
    async def vstream(
        self, request: binlogdata.VStreamRequest
    ) -> AsyncIterator[AsyncIterator[list[Frame]]]:
        yield self._batches()

    async def _batches(self) -> AsyncIterator[list[Frame]]:
        bodies = self._bodies
        n = len(bodies)
        for i in range(self._count):
            yield split_response(bodies[i % n])
        await trio.sleep_forever()

    @asynccontextmanager
    async def stream_health(
        self,
    ) -> AsyncIterator[AsyncIterator[query.StreamHealthResponse]]:
        async def reports() -> AsyncIterator[query.StreamHealthResponse]:
            await trio.sleep_forever()
            yield query.StreamHealthResponse()

        yield reports()


class Directory:
    def __init__(self) -> None:
        self.sources: dict[str, ReplaySource] = {}

    def source_for(self, tablet: TabletInfo) -> ReplaySource:
        return self.sources[tablet.alias]


async def _one_run(
    gateway: Gateway, request: vtgate.VStreamRequest, total_events: int
) -> tuple[float, float, int]:
    """Wall and CPU seconds until the sink has every event, and the bytes it received."""
    received = 0
    done = trio.Event()
    metrics = gateway.metrics

    async def sink(bodies: list[bytes]) -> None:
        nonlocal received
        for body in bodies:
            received += len(body)
        # The sender counts a parcel's events just before handing it over.
        if metrics.total("VStreamsEventsStreamed") >= total_events:
            done.set()

    start = time.perf_counter()
    cpu_start = time.process_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, request, gateway, sink)
        await done.wait()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        nursery.cancel_scope.cancel()
    return elapsed, cpu, received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--transactions", type=int, default=4000, help="per shard")
    parser.add_argument("--batch-transactions", type=int, default=8)
    parser.add_argument("--exclude-keyspace", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    parser.add_argument(
        "--output", default=str(Path(__file__).parent / "results" / "bench_merge_inproc.json")
    )
    args = parser.parse_args()

    per_batch = args.batch_transactions
    batches = args.transactions // per_batch
    topology = Topology(cell="zone1", keyspaces={"commerce": KeyspaceInfo("commerce", SHARDS)})
    directory = Directory()
    for uid, shard in enumerate(SHARDS, start=100):
        tablet = TabletInfo("commerce", shard, "zone1", uid, topodata.TabletType.PRIMARY)
        topology.tablets.append(tablet)
        bodies = _responses(shard, per_batch)
        directory.sources[tablet.alias] = ReplaySource(tablet, bodies, batches)
    total_events = len(SHARDS) * batches * per_batch * EVENTS_PER_TX
    request = vtgate.VStreamRequest(
        tablet_type=topodata.TabletType.PRIMARY,
        vgtid=binlogdata.VGtid(
            shard_gtids=[
                binlogdata.ShardGtid(keyspace="commerce", shard=s, gtid="current") for s in SHARDS
            ]
        ),
        flags=vtgate.VStreamFlags(exclude_keyspace_from_table_name=args.exclude_keyspace),
    )
    runs = []
    for run in range(args.runs):
        gateway = Gateway(topology, directory, GatewaySettings())
        profiler = cProfile.Profile() if args.profile and run == 0 else None
        if profiler:
            profiler.enable()
        elapsed, cpu, received = trio.run(_one_run, gateway, request, total_events)
        if profiler:
            profiler.disable()
        streamed = gateway.metrics.total("VStreamsEventsStreamed")
        runs.append(
            {
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "events": streamed,
                "events_per_s": streamed / elapsed,
                "mb_per_s": received / elapsed / 1e6,
                "events_per_cpu_s": streamed / cpu,
                "mb_per_cpu_s": received / cpu / 1e6,
                "bytes_out": received,
            }
        )
        print(
            f"run {run + 1}: {streamed:,.0f} events, wall {elapsed:.3f}s = "
            f"{streamed / elapsed:,.0f} events/s {received / elapsed / 1e6:,.1f} MB/s; "
            f"cpu {cpu:.3f}s = {streamed / cpu:,.0f} events/s {received / cpu / 1e6:,.1f} MB/s"
            + (" (profiled)" if profiler else "")
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    timed = runs[1:] if args.profile and len(runs) > 1 else runs
    result = {
        "benchmark": "merge_inproc",
        "shards": len(SHARDS),
        "rows_per_transaction": ROWS_PER_TX,
        "events_per_transaction": EVENTS_PER_TX,
        "transactions_per_response": per_batch,
        "events_per_run": total_events,
        "exclude_keyspace_from_table_name": args.exclude_keyspace,
        "python": sys.version.split()[0],
        "c_extension": ACCELERATED,
        "median_events_per_s": statistics.median(r["events_per_s"] for r in timed),
        "median_mb_per_s": statistics.median(r["mb_per_s"] for r in timed),
        "median_events_per_cpu_s": statistics.median(r["events_per_cpu_s"] for r in timed),
        "median_mb_per_cpu_s": statistics.median(r["mb_per_cpu_s"] for r in timed),
        "runs": runs,
    }
    print(
        f"median wall: {result['median_events_per_s']:,.0f} events/s, "
        f"{result['median_mb_per_s']:,.1f} MB/s; median cpu: "
        f"{result['median_events_per_cpu_s']:,.0f} events/s, "
        f"{result['median_mb_per_cpu_s']:,.1f} MB/s "
        f"({len(timed)} runs, {total_events:,} events each)"
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
