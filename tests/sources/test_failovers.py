"""The simulated cluster's failovers: planned reparents and a primary that dies."""

from __future__ import annotations

import pytest
import trio

from tests.sources.replay import request
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, query, topodata
from vsmux.sources._simulated import SimulatedCluster
from vsmux.sources._simulated.gtid import GtidSet

PRIMARY = topodata.TabletType.PRIMARY
REPLICA = topodata.TabletType.REPLICA


def cluster() -> SimulatedCluster:
    built = SimulatedCluster.build(
        {"commerce": ["0"]}, seed=3, tablet_types=("primary", "replica"), large_probability=0
    )
    built.apply_random_transactions(10)
    return built


def primary_request(c: SimulatedCluster) -> binlogdata.VStreamRequest:
    req = request(str(GtidSet.single(c.shard_log("commerce", "0").uuid, 0)), shard="0")
    assert req.target is not None
    req.target.tablet_type = PRIMARY
    return req


def types(c: SimulatedCluster) -> dict[str, topodata.TabletType]:
    return {t.alias: t.tablet_type for t in c.topology.tablets_for("commerce", "0")}


async def first_report(c: SimulatedCluster, alias: str) -> query.StreamHealthResponse:
    tablet = next(t for t in c.tablets() if t.alias == alias)
    async with tablet.stream_health() as reports:
        async for report in reports:
            return report
    raise AssertionError("no report")


async def test_planned_reparent_moves_the_primary_role() -> None:
    c = cluster()
    old = c.tablet("commerce", "0").alias
    replica = c.tablet("commerce", "0", REPLICA).alias
    term_before = (await first_report(c, old)).primary_term_start_timestamp
    new = c.reparent("commerce", "0")
    assert new == replica
    assert types(c) == {old: REPLICA, new: PRIMARY}
    assert c.tablet("commerce", "0").alias == new
    assert c.reparents == [("commerce", "0", old, new, "planned")]
    report = await first_report(c, new)
    assert report.target is not None and report.target.tablet_type == PRIMARY
    assert report.serving
    assert report.primary_term_start_timestamp >= term_before
    # Same history: the new primary serves the same position.
    assert c.tablet("commerce", "0").position == c.tablet("commerce", "0", REPLICA).position


async def test_streams_on_a_demoted_primary_end_with_failed_precondition() -> None:
    c = cluster()
    primary = c.tablet("commerce", "0")
    req = primary_request(c)
    seen = 0
    with pytest.raises(VStreamError) as info:
        async with primary.vstream(req) as stream:
            async for batch in stream:
                seen += len(batch)
                if seen and not c.reparents:
                    c.reparent("commerce", "0")
                    c.apply_random_transactions(1)  # the next send notices
    assert info.value.code == Code.FAILED_PRECONDITION
    assert "REPLICA" in info.value.message
    # The new primary streams from the same position.
    async with c.tablet("commerce", "0").vstream(req) as stream:
        async for batch in stream:
            assert batch
            break


async def test_a_dead_primary_fails_its_streams_and_health() -> None:
    c = cluster()
    primary = c.tablet("commerce", "0")
    req = primary_request(c)
    with pytest.raises(VStreamError) as info:
        async with primary.vstream(req) as stream:
            async for _batch in stream:
                c.kill_primary("commerce", "0")
    assert info.value.code == Code.UNAVAILABLE
    assert "is down" in info.value.message
    with pytest.raises(VStreamError):
        await first_report(c, primary.alias)
    with pytest.raises(VStreamError):
        async with primary.vstream(req) as stream:
            async for _batch in stream:
                pass
    # The topology still names the dead tablet until a replica is promoted.
    assert types(c)[primary.alias] == PRIMARY


async def test_fail_over_promotes_a_replica_after_the_delay(
    autojump_clock: trio.abc.Clock,
) -> None:
    c = cluster()
    old = c.tablet("commerce", "0").alias
    replica = c.tablet("commerce", "0", REPLICA).alias
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: c.fail_over("commerce", "0", promote_after=3.0))
        await trio.sleep(2.9)
        assert types(c)[old] == PRIMARY and c.reparents == []
    assert trio.current_time() == pytest.approx(3.0)
    assert types(c) == {old: REPLICA, replica: PRIMARY}
    assert c.reparents == [("commerce", "0", old, replica, "unplanned")]
    report = await first_report(c, replica)
    assert report.serving and report.target is not None and report.target.tablet_type == PRIMARY


def test_reparent_needs_a_replica() -> None:
    c = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    with pytest.raises(ValueError, match="no replica"):
        c.reparent("commerce", "0")
    with pytest.raises(ValueError, match="not a replica"):
        c.reparent("commerce", "0", c.tablet("commerce", "0").alias)
