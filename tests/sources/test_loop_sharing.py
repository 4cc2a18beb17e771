"""The simulated cluster shares the gateway's Trio loop without stalling it.

A copy of a big table and a workload of large transactions run next to a
ticker (and, end to end, gRPC health checks); the longest time the loop was
away, measured on Trio's clock, must stay far below what the unsliced code
took. Before: a 300k-row copy answered 4 health checks in 4 s (max 2.2 s),
six 5000-row transactions kept the loop away for 1.2 s; after: 46 checks,
max ~90 ms, and ~40 ms. These run on the real clock: CPU time does not pass
on a mock one.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import trio
import trio_asyncio
from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from tests.sources.replay import Replay, T, request
from vsmux.mux import Gateway, run_vstream
from vsmux.proto import binlogdata, query, vtgate
from vsmux.server.app import open_gateway_server
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog
from vsmux.sources._simulated import SimulatedCluster, Upsert
from vsmux.sources._simulated.rows import encode_row
from vsmux.wire import split_response

# The longest the loop may be away doing work. A slice of work is a few
# milliseconds; the rest is headroom for a loaded machine and the garbage
# collector's full passes (50-150 ms with a few million objects).
MAX_GAP = 0.2
BIG_TABLE_ROWS = 300_000


def big_cluster(rows: int = BIG_TABLE_ROWS) -> SimulatedCluster:
    """One shard whose ``corder`` table holds ``rows`` rows, keys in random order.

    The rows are loaded as a bootstrapped server's (no binlog, no routing),
    which takes a second instead of the minutes a workload would need.
    """
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1, large_probability=0)
    log = cluster.shard_log("commerce", "0")
    ids = list(range(1, rows + 1))
    random.Random(1).shuffle(ids)
    table = {
        (str(i).encode(),): (str(i).encode(), str(i % 97).encode(), b"sku\x00", b"19.99")
        for i in ids
    }
    log.bootstrap({"corder": table, "customer": {}, "product": {}}, log.schemas)
    return cluster


class GapMeter:
    """Wakes every few milliseconds and keeps the longest time it was kept waiting.

    ``longest`` is on Trio's clock. ``longest_busy`` counts, for each wait,
    only the CPU time this process used meanwhile: on a machine so loaded
    that the process itself waits for a core, that is the part of a gap the
    code under test is answerable for. The tests assert on it.
    """

    TICK = 0.005

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_busy = 0.0
        self.ticks = 0

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        last, last_cpu = trio.current_time(), time.process_time()
        try:
            while True:
                await trio.sleep(self.TICK)
                self._gap(last, last_cpu)
                self.ticks += 1
                last, last_cpu = trio.current_time(), time.process_time()
        finally:
            # Cancelled at the end: the wait in progress counts too (a loop
            # that never came back would otherwise show no gap at all).
            self._gap(last, last_cpu)

    def _gap(self, since: float, since_cpu: float) -> None:
        waited = trio.current_time() - since - self.TICK
        busy = min(waited, time.process_time() - since_cpu)
        self.longest = max(self.longest, waited)
        self.longest_busy = max(self.longest_busy, busy)

    def check(self) -> None:
        assert self.longest_busy < MAX_GAP, (
            f"the loop was away for {self.longest:.3f} s, "
            f"{self.longest_busy:.3f} s of it busy in this process"
        )


@asynccontextmanager
async def metered() -> AsyncIterator[GapMeter]:
    meter = GapMeter()
    with leftovers_frozen():
        async with trio.open_nursery() as nursery:
            await nursery.start(meter.run)
            yield meter
            nursery.cancel_scope.cancel()


@contextmanager
def leftovers_frozen() -> Iterator[None]:
    """Keep what earlier tests left in this process out of the collector's full passes.

    A gateway freezes its start-up objects (``server.gcsettings``), so a
    full pass of the cyclic collector walks only what it made since. In a
    test session this process also holds what every earlier test left, and
    a full pass over that took 0.08-0.18 s there (measured with
    ``gc.callbacks``): a gap of the test process, not of the simulator.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def test_a_big_copy_leaves_the_loop_every_few_milliseconds() -> None:
    cluster = big_cluster()
    tablet = cluster.tablet("commerce", "0")
    rows = 0
    async with metered() as meter, tablet.vstream(request("", shard="0")) as stream:
        async for batch in stream:
            rows += sum(1 for f in batch if f.type == T.ROW)
            if any(f.type == T.COPY_COMPLETED for f in batch):
                break
    assert rows > 1000  # ROW events of up to 8 KiB of rows each
    assert meter.ticks > 10
    meter.check()


async def test_a_resumed_copy_catching_up_leaves_the_loop() -> None:
    cluster = big_cluster(100_000)
    log = cluster.shard_log("commerce", "0")
    start = log.position()
    # Ten transactions of 2000 updates each, half of them to rows the
    # interrupted copy had already sent: resuming, the catch-up decodes every
    # ROW event to keep only those.
    for first in range(25_001, 45_001, 2000):
        updates = (
            Upsert("corder", {"order_id": str(i).encode(), "price": b"1.00"})
            for i in range(first, first + 2000)
        )
        cluster.execute("commerce", *updates)
    schema = log.schemas["corder"]
    copied_up_to = query.QueryResult(
        fields=schema.pk_fields("commerce"), rows=[query.Row.parse(encode_row((b"35000",)))]
    )
    last_pk = binlogdata.TableLastPk(table_name="corder", lastpk=copied_up_to)
    req = request(start, "/corder", shard="0", last_pks=[last_pk])
    async with metered() as meter, cluster.tablet("commerce", "0").vstream(req) as stream:
        async for batch in stream:
            if any(f.type == T.COPY_COMPLETED for f in batch):
                break
    meter.check()


async def test_large_transactions_commit_without_holding_the_loop() -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"]},
        seed=2,
        large_probability=1.0,
        large_rows=(5000, 5000),
        max_table_rows=None,
    )
    async with metered() as meter:
        await cluster.run_workload(4, max_transactions=6)
    assert len(cluster.table_contents("commerce")["corder"]) == 6 * 5000
    meter.check()


async def test_gateway_health_checks_answer_during_a_big_copy() -> None:
    """gRPC health checks of a gateway whose simulated tablet is copying 300k rows.

    The copy's client is a session run in process with a client that only
    splits the responses into frames: a gRPC client decoding every row with
    message classes in this same loop would be what stalls it.
    """
    cluster = big_cluster()
    gateway = Gateway(cluster.topology, cluster)
    catalog = ClusterTableCatalog(cluster, StaticTableCatalog())
    copy_request = vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace="commerce", shard="0", gtid="")]
        )
    )
    latencies: list[float] = []
    copied = trio.Event()
    responses = 0

    async def client(bodies: list[bytes]) -> None:
        nonlocal responses
        responses += len(bodies)
        for body in bodies:
            if any(f.type == T.COPY_COMPLETED for f in split_response(body)):
                copied.set()

    async with (
        trio_asyncio.open_loop(),
        open_gateway_server(gateway, run_vstream, catalog) as server,
    ):
        port = int(server.address.rsplit(":", 1)[1])

        async def health() -> None:
            channel = Channel("127.0.0.1", port)
            stub = HealthStub(channel)
            check: Callable[[], Awaitable[HealthCheckResponse]] = trio_asyncio.aio_as_trio(
                lambda: stub.Check(HealthCheckRequest())
            )
            try:
                while not copied.is_set():
                    sent, sent_cpu = trio.current_time(), time.process_time()
                    reply = await check()
                    assert reply.status == HealthCheckResponse.SERVING
                    waited = trio.current_time() - sent
                    # As GapMeter: only the part this process was busy counts.
                    latencies.append(min(waited, time.process_time() - sent_cpu))
                    await trio.sleep(0.02)
            finally:
                channel.close()

        with trio.fail_after(120), leftovers_frozen():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_vstream, copy_request, gateway, client)
                nursery.start_soon(health)
                await copied.wait()
                nursery.cancel_scope.cancel()
    assert responses > 100
    assert len(latencies) > 10
    assert max(latencies) < MAX_GAP, f"a health check took {max(latencies):.3f} s"


async def test_writes_between_the_slices_of_a_large_transaction_keep_it_exact(
    autojump_clock: trio.abc.Clock,
) -> None:
    # While a 3000-row transaction is prepared in slices, another writer keeps
    # changing rows it is about to insert: the commit must notice and plan
    # again, so every before image in the binlog is what the table held.
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"]},
        seed=3,
        large_probability=1.0,
        large_rows=(3000, 3000),
        max_table_rows=None,
    )
    cluster.apply_random_transactions(1)  # a customer exists to write against
    start = {s: cluster.position("commerce", s) for s in ("-80", "80-")}
    initial = {s: _rows_by_column(cluster, s) for s in start}
    first_id = cluster._keyspaces["commerce"].next_ids["corder"] + 1
    customer = (str(cluster._keyspaces["commerce"].next_ids["customer"] + 1).encode(),)

    def committed() -> bool:  # the transaction's new customer is there
        return any(customer in cluster.shard_log("commerce", s).tables["customer"] for s in start)

    async def workload() -> None:
        await cluster.run_workload(1, max_transactions=1)

    async def interloper() -> None:
        order_id = first_id
        while not committed():
            cluster.execute(
                "commerce",
                Upsert("corder", {"order_id": str(order_id).encode(), "price": b"0.01"}),
            )
            order_id += 7
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(workload)
        nursery.start_soon(interloper)
    contents = cluster.table_contents("commerce")
    assert len([k for k in contents["corder"] if int(k[0]) >= first_id]) == 3000
    merged: dict[str, dict[tuple[bytes, ...], dict[str, bytes | None]]] = {}
    for shard, position in start.items():
        replay = Replay()  # strict: before images must match the replayed rows
        tablet = cluster.tablet("commerce", shard)
        replay.tables = initial[shard]
        replay.columns = {t: list(names) for t, names in _columns(cluster, shard).items()}
        async with tablet.vstream(request(position, shard=shard)) as stream:
            async for batch in stream:
                replay.apply(batch)
                if replay.position == tablet.position:
                    break
        for table, rows in replay.tables.items():
            merged.setdefault(table, {}).update(rows)
    assert {t: r for t, r in merged.items() if r} == {t: r for t, r in contents.items() if r}


def _columns(cluster: SimulatedCluster, shard: str) -> dict[str, tuple[str, ...]]:
    log = cluster.shard_log("commerce", shard)
    return {table: schema.column_names for table, schema in log.schemas.items()}


def _rows_by_column(
    cluster: SimulatedCluster, shard: str
) -> dict[str, dict[tuple[bytes, ...], dict[str, bytes | None]]]:
    """A shard's rows now, as a Replay holds them."""
    names = _columns(cluster, shard)
    log = cluster.shard_log("commerce", shard)
    return {
        table: {key: dict(zip(names[table], row, strict=True)) for key, row in rows.items()}
        for table, rows in log.tables.items()
    }


async def test_reshard_in_slices_leaves_the_loop_and_matches_reshard() -> None:
    sliced = big_cluster(50_000)
    direct = big_cluster(50_000)
    for cluster in (sliced, direct):
        cluster.apply_random_transactions(50)
    async with metered() as meter:
        journal = await sliced.reshard_in_slices("commerce", ["-80", "80-"])
    assert journal == direct.reshard("commerce", ["-80", "80-"])
    for shard in ("-80", "80-"):
        assert sliced.shard_log("commerce", shard).tables == (
            direct.shard_log("commerce", shard).tables
        )
    assert sliced.table_contents("commerce") == direct.table_contents("commerce")
    meter.check()
