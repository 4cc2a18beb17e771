"""The simulated cluster's memory stays bounded: binlog retention, schema history, table sizes.

Time is Trio's (``autojump_clock``) or a hand-driven clock, so every bound is
checked at exact, repeatable moments.
"""

from __future__ import annotations

import gc
import math
import tracemalloc

import pytest
import trio

from tests.sources.replay import Replay, request
from vsmux.cli import simulated as simulated_options
from vsmux.cli.demo import DEMO_BINLOG_RETENTION_SECONDS, DEMO_MAX_TABLE_ROWS
from vsmux.cli.main import build_parser
from vsmux.core.retry import RetryAction, classify, mysql_errno
from vsmux.errors import Code, VStreamError
from vsmux.mux import Gateway, run_vstream
from vsmux.proto import binlogdata, topodata, vtgate
from vsmux.server.standalone import merge_simulated
from vsmux.sources._simulated import SimulatedCluster
from vsmux.sources._simulated.binlog import (
    DEFAULT_RETENTION_BYTES,
    DEFAULT_RETENTION_SECONDS,
    ShardLog,
)
from vsmux.sources._simulated.clock import SimClock
from vsmux.sources._simulated.routing import keyspace_id
from vsmux.sources._simulated.workload import DEFAULT_MAX_TABLE_ROWS
from vsmux.topology import load_topology


class HandClock(SimClock):
    """Epoch seconds that move only when a test moves them."""

    def __init__(self) -> None:
        super().__init__(1_700_000_000.0)
        self.at = 1_700_000_000.0

    def now(self) -> float:
        return self.at


def _oldest_kept(log: ShardLog) -> int:
    return next(iter(log.entries_after(log.first_streamable - 1))).timestamp


def test_byte_bound_counts_what_entries_hold_in_memory() -> None:
    bound = 200_000
    cluster = SimulatedCluster.build(
        {"commerce": ["0"]},
        seed=2,
        retention_bytes=bound,
        retention_seconds=math.inf,
        large_probability=0,
    )
    log = cluster.shard_log("commerce", "0")
    cluster.apply_random_transactions(500)
    for _ in range(20):
        cluster.apply_random_transactions(25)
        # Purged down to the bound, oldest first (the newest entry always stays).
        assert bound - 10_000 <= log.retained_bytes <= bound
        assert log.first_streamable > 1
    kept = list(log.entries_after(log.first_streamable - 1))
    assert len(kept) == log.retained_entries
    assert sum(e.size for e in kept) == log.retained_bytes
    # The count is memory, not encoded bytes: every entry costs its objects too.
    encoded = sum(len(e.begin) + len(e.gtid) + len(e.commit) for e in kept) + sum(
        p.size for e in kept for p in e.parts
    )
    assert log.retained_bytes > encoded + 200 * len(kept)


def test_age_bound_purges_entries_older_than_retention_seconds() -> None:
    clock = HandClock()
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"]}, seed=3, clock=clock, retention_seconds=60
    )
    for _ in range(600):  # ten minutes at one transaction a second
        clock.at += 1
        cluster.apply_random_transactions(1)
    for shard in ("-80", "80-"):
        log = cluster.shard_log("commerce", shard)
        assert log.first_streamable > 100
        # Relative to the shard's own newest commit, as MySQL expires by its clock.
        newest = next(iter(log.entries_after(log.last_seqno - 1))).timestamp
        assert newest - 60 <= _oldest_kept(log) <= newest
    # An idle cluster keeps what it has: the age bound is applied on commit.
    log = cluster.shard_log("commerce", "-80")
    first = log.first_streamable
    clock.at += 3600
    assert log.first_streamable == first


async def test_purged_position_gets_vttablets_error_and_is_position_lost(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["0"]}, seed=4, retention_seconds=30, large_probability=0
    )
    await cluster.run_workload(10, max_transactions=1000)  # 100 s of mock time
    tablet = cluster.tablet("commerce", "0")
    log = tablet.log
    first = log.first_streamable
    assert first > 2
    with pytest.raises(VStreamError) as info:
        async with tablet.vstream(request(log.position(5), shard="0")) as stream:
            async for _ in stream:
                pass
    error = info.value
    bare = log.position(5).split("/", 1)[1]
    assert error.code == Code.UNKNOWN
    assert error.message == (
        f"{tablet.alias}: stream (at source tablet) error @ {bare}: Cannot replicate because "
        "the source purged required binary logs. Replicate the missing transactions from "
        "elsewhere, or provision a new replica from backup. Consider increasing the source's "
        f"binary log expiration period. The GTID set sent by the replica is '{bare}', and the "
        f"missing transactions are '{log.uuid}:6-{first - 1}' (errno 1236) (sqlstate HY000)"
    )
    assert mysql_errno(error.message) == 1236
    assert classify(error) is RetryAction.RETRY_OTHER_TABLET
    # The oldest kept position still streams.
    replay = Replay(strict=False)
    async with tablet.vstream(request(log.position(first - 1), shard="0")) as stream:
        async for batch in stream:
            replay.apply(batch)
            if replay.position == tablet.position:
                break
    assert replay.gtids[0] == log.position(first)


async def test_gateway_reports_a_purged_position_as_lost_on_every_tablet(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["0"]},
        seed=5,
        retention_seconds=30,
        large_probability=0,
        tablet_types=("primary", "replica"),
    )
    await cluster.run_workload(10, max_transactions=1000)
    log = cluster.shard_log("commerce", "0")
    gateway = Gateway(cluster.topology, cluster)
    req = vtgate.VStreamRequest(
        tablet_type=topodata.TabletType.REPLICA,
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace="commerce", shard="0", gtid=log.position(5))]
        ),
    )

    async def client(bodies: list[bytes]) -> None:
        pass

    with pytest.raises(VStreamError) as info:
        await run_vstream(req, gateway, client)
    message = info.value.message
    assert info.value.code == Code.UNKNOWN
    assert "does not have the stream's position" in message
    assert "purged required binary logs" in message and "(errno 1236)" in message


async def test_a_stream_left_behind_by_a_purge_fails_with_errno_1236(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["0"]}, seed=6, retention_seconds=20, large_probability=0
    )
    tablet = cluster.tablet("commerce", "0")
    with pytest.raises(VStreamError) as info:
        async with tablet.vstream(request("current", shard="0")) as stream:
            async for _ in stream:
                # A client that stops reading while the binlog moves on.
                await cluster.run_workload(10, max_transactions=500)
    assert "purged required binary logs" in info.value.message
    assert classify(info.value) is RetryAction.RETRY_OTHER_TABLET


async def test_schema_versions_go_with_the_entries_that_used_them(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["0"]},
        seed=7,
        retention_seconds=10,
        ddl_probability=0.2,
        large_probability=0,
    )
    await cluster.run_workload(20, max_transactions=2000)  # 100 s, ~400 DDLs
    log = cluster.shard_log("commerce", "0")
    versions = log.schemas["customer"].version
    assert versions > 100
    # Only versions a kept entry may use are remembered: about ten seconds' worth.
    assert len(log._versions["customer"]) < 80
    assert len(log._field_payloads) <= sum(len(v) for v in log._versions.values())
    # Every kept entry's schema can still be looked up and streamed with FIELDs.
    for entry in log.entries_after(log.first_streamable - 1):
        for part in entry.parts:
            assert log.schema_version(part.table, part.version) is part.schema
    replay = Replay(strict=False)
    tablet = cluster.tablet("commerce", "0")
    async with tablet.vstream(request(log.position(log.first_streamable - 1), shard="0")) as s:
        async for batch in s:
            replay.apply(batch)
            if replay.position == tablet.position:
                break
    assert replay.columns  # FIELD events came before the rows


async def test_table_bound_archives_rows_and_streams_stay_exact(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"]}, seed=8, max_table_rows=300, large_probability=0
    )
    replays = {s: Replay() for s in ("-80", "80-")}
    positions = {s: cluster.position("commerce", s) for s in replays}
    await cluster.run_workload(50, max_transactions=3000)
    contents = cluster.table_contents("commerce")
    for table in ("corder", "customer"):
        # At most one drawn transaction (five rows) over the bound.
        assert 270 <= len(contents[table]) <= 306
    for shard, replay in replays.items():
        tablet = cluster.tablet("commerce", shard)
        async with tablet.vstream(request(positions[shard], shard=shard)) as stream:
            async for batch in stream:
                replay.apply(batch)
                if replay.position == tablet.position:
                    break
    merged: dict[str, dict[tuple[bytes, ...], dict[str, bytes | None]]] = {}
    for replay in replays.values():
        for table, rows in replay.tables.items():
            merged.setdefault(table, {}).update(rows)
    assert {t: r for t, r in merged.items() if r} == {t: r for t, r in contents.items() if r}


def test_memory_is_flat_once_the_bounds_are_reached() -> None:
    clock = HandClock()
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"]},
        seed=9,
        clock=clock,
        retention_seconds=20,
        max_table_rows=150,
        large_probability=0,
    )

    def run(seconds: int) -> None:
        for _ in range(seconds * 50):  # 50 transactions a second
            clock.at += 0.02
            cluster.apply_random_transactions(1)

    run(40)  # past the age bound and the table bound

    def count() -> tracemalloc.Snapshot:
        # Routing's keyspace-id cache fills up to its own fixed bound (65536
        # keys) while new rows keep arriving: emptied so it is not counted.
        keyspace_id.cache_clear()
        gc.collect()
        # Only what the simulator allocates: not the earlier snapshot, not
        # whatever else the test process still holds from other tests.
        ours = tracemalloc.Filter(True, "*/vsmux/sources/_simulated/*")
        return tracemalloc.take_snapshot().filter_traces([ours])

    tracemalloc.start()
    try:
        run(30)  # everything kept from before tracing started is gone by now
        warm = count()
        run(40)
        later = count()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in later.compare_to(warm, "filename"))
    # Without the bounds these 40 s add 3.6 MB. With them what is left is
    # noise: the kept entries and rows vary by a few dozen, and CPython's
    # tuple free lists hold on to up to 2000 freed tuples of each size.
    assert abs(grown) < 400_000, grown


def test_memory_bounds_are_options_of_serve_demo_and_cluster() -> None:
    parser = build_parser()
    bounds = ["--binlog-retention", "30", "--binlog-retention-bytes", "1000000"]
    commands = (["demo"], ["cluster", "--topology-out", "t.toml"], ["serve", "--topology", "t"])
    for command in commands:
        defaults = simulated_options.build_options(parser.parse_args(command))
        # The demo keeps less by default (it shows the stream, not volume).
        demo = command == ["demo"]
        assert defaults == {
            "retention_seconds": DEMO_BINLOG_RETENTION_SECONDS
            if demo
            else DEFAULT_RETENTION_SECONDS,
            "retention_bytes": DEFAULT_RETENTION_BYTES,
            "max_table_rows": DEMO_MAX_TABLE_ROWS if demo else DEFAULT_MAX_TABLE_ROWS,
        }
        args = parser.parse_args([*command, *bounds, "--max-table-rows", "0"])
        assert simulated_options.build_options(args) == {
            "retention_seconds": 30.0,
            "retention_bytes": 1_000_000,
            "max_table_rows": None,
        }
    topology = load_topology(
        'cell = "zone1"\n[keyspaces.ks]\nshards = ["0"]\n'
        '[[tablets]]\nkeyspace = "ks"\nshard = "0"\nuid = 1\n'
        "simulated = true\n"
    )
    _, cluster = merge_simulated(topology, 1, **simulated_options.build_options(args))
    assert cluster is not None
    log = cluster.shard_log("ks", "0")
    assert (log._retention_seconds, log._retention_bytes) == (30.0, 1_000_000)
    assert cluster.workload.max_rows is None
