"""Injected faults and StreamHealth of simulated tablets."""

from __future__ import annotations

import pytest
import trio

from tests.sources.replay import T, request
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, topodata
from vsmux.sources._simulated import SimulatedCluster, SimulatedTablet
from vsmux.sources._simulated.gtid import GtidSet

ORIGIN_SHARD = "0"


def setup(n: int = 40) -> tuple[SimulatedCluster, SimulatedTablet, binlogdata.VStreamRequest]:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=9, large_probability=0)
    cluster.apply_random_transactions(n)
    tablet = cluster.tablet("commerce", "0")
    return cluster, tablet, request(str(GtidSet.single(tablet.log.uuid, 0)), shard="0")


async def drain(tablet: SimulatedTablet, req: binlogdata.VStreamRequest, limit: int) -> list[int]:
    """Event types received until the stream ends or ``limit`` events arrived."""
    kinds: list[int] = []
    async with tablet.vstream(req) as stream:
        async for batch in stream:
            kinds += [f.type for f in batch]
            if len(kinds) >= limit:
                break
    return kinds


async def test_fail_after_n_events() -> None:
    _, tablet, req = setup()
    tablet.faults.fail_after(7, Code.UNAVAILABLE, "connection to mysqld lost")
    kinds: list[int] = []
    with pytest.raises(VStreamError) as info:
        async with tablet.vstream(req) as stream:
            async for batch in stream:
                kinds += [f.type for f in batch]
    assert len(kinds) == 7
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == f"{tablet.alias}: connection to mysqld lost"
    # Fired once: the next stream is healthy.
    assert len(await drain(tablet, req, 20)) >= 20


async def test_fail_mid_transaction() -> None:
    _, tablet, req = setup()
    tablet.faults.fail_after(3, Code.INTERNAL, "boom", mid_transaction=True, once=False)
    for _ in range(2):  # persistent: every stream fails the same way
        kinds: list[int] = []
        with pytest.raises(VStreamError) as info:
            async with tablet.vstream(req) as stream:
                async for batch in stream:
                    kinds += [f.type for f in batch]
        assert info.value.code == Code.INTERNAL
        assert T.BEGIN in kinds and kinds[-1] != T.COMMIT
        assert kinds.count(T.BEGIN) > kinds.count(T.COMMIT)


async def test_end_after_events_ends_cleanly() -> None:
    _, tablet, req = setup()
    tablet.faults.end_after(4)
    assert len(await drain(tablet, req, 1000)) == 4


async def test_stall_sends_nothing_until_resumed(autojump_clock: object) -> None:
    _, tablet, _ = setup(1)
    arrivals: list[tuple[float, list[int]]] = []

    async def consume(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with tablet.vstream(request("current", shard="0")) as stream:
            async for batch in stream:
                arrivals.append((trio.current_time(), [f.type for f in batch]))
                if len(arrivals) == 1:
                    tablet.faults.stall()
                    task_status.started()
                if len(arrivals) == 3:
                    return

    async with trio.open_nursery() as nursery:
        await nursery.start(consume)
        await trio.sleep(30)
        assert len(arrivals) == 1, "a stalled tablet sent something"
        tablet.faults.resume()
    assert arrivals == [
        (0, [T.GTID, T.OTHER]),
        (30, [T.HEARTBEAT]),  # the heartbeat held back by the stall
        (30.9, [T.HEARTBEAT]),
    ]


async def test_slow_down_delays_each_response(autojump_clock: object) -> None:
    _, tablet, _ = setup(1)
    tablet.faults.slow_down(2.5)
    times = []
    async with tablet.vstream(request("current", shard="0")) as stream:
        async for _ in stream:
            times.append(trio.current_time())
            if len(times) == 3:
                break
    assert times == pytest.approx([2.5, 5.9, 9.3])


async def test_stream_health_reports_changes_and_repeats(autojump_clock: object) -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"]}, tablet_types=("primary", "replica")
    )
    replica = cluster.tablet("commerce", "80-", topodata.TabletType.REPLICA)
    got = []
    async with replica.stream_health() as reports:
        async for report in reports:
            got.append((trio.current_time(), report))
            if len(got) == 1:
                replica.health.set_lag(45)
            elif len(got) == 2:
                replica.health.set_error("mysqld is not reachable")
            elif len(got) == 4:
                break
    (t0, first), (t1, lagged), (t2, failing), (t3, repeat) = got
    assert first.target is not None and first.target.shard == "80-"
    assert first.target.tablet_type == topodata.TabletType.REPLICA
    assert first.serving and first.tablet_alias is not None
    assert first.tablet_alias.uid == replica.info.uid
    assert lagged.realtime_stats is not None and lagged.realtime_stats.replication_lag_seconds == 45
    assert failing.realtime_stats is not None
    assert failing.realtime_stats.health_error == "mysqld is not reachable"
    assert (t0, t1, t2, t3) == (0, 0, 0, 5)
    assert repeat == failing
    assert [t.tablet_type for t in cluster.topology.tablets_for("commerce", "80-")] == [
        topodata.TabletType.PRIMARY,
        topodata.TabletType.REPLICA,
    ]
