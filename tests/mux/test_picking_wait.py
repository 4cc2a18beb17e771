"""Tablet picking and health watching under a mock clock (docs/vitess.md sections 6.1-6.2)."""

from __future__ import annotations

import enum
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.mux.picking_wait import TabletPicker, watch_health
from vsmux.proto import query, topodata
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology

PRIMARY = topodata.TabletType.PRIMARY
REPLICA = topodata.TabletType.REPLICA
SETTINGS = GatewaySettings()  # retry every 30 s, give up after 90 s, lag limit 30 s


class Hang(enum.Enum):
    FOREVER = "forever"


HANG = Hang.FOREVER
Item = query.StreamHealthResponse | VStreamError | Hang
Steps = list[tuple[float, Item]]  # (delay before the item, item); the list's end ends the stream


def report(
    tablet_type: topodata.TabletType = REPLICA,
    *,
    serving: bool = True,
    health_error: str = "",
    lag: int = 0,
) -> query.StreamHealthResponse:
    return query.StreamHealthResponse(
        target=query.Target(keyspace="ks", shard="-80", tablet_type=tablet_type),
        serving=serving,
        realtime_stats=query.RealtimeStats(health_error=health_error, replication_lag_seconds=lag),
    )


HEALTHY = [(0.0, report()), (0.0, HANG)]


@dataclass
class FakeSource:
    """A tablet that only answers StreamHealth, following a script.

    ``steps`` may depend on the time the stream is opened.
    """

    tablet: TabletInfo
    steps: Steps | Callable[[float], Steps]
    opened: list[float] = field(default_factory=list)
    closed: list[float] = field(default_factory=list)

    def vstream(self, request: Any) -> Any:
        raise AssertionError("the picker never opens a vstream")

    @asynccontextmanager
    async def stream_health(self) -> AsyncIterator[AsyncIterator[query.StreamHealthResponse]]:
        now = trio.current_time()
        self.opened.append(now)
        steps = self.steps(now) if callable(self.steps) else self.steps
        try:
            yield self._reports(steps)
        finally:
            self.closed.append(trio.current_time())

    async def _reports(self, steps: Steps) -> AsyncIterator[query.StreamHealthResponse]:
        for delay, item in steps:
            await trio.sleep(delay)
            if item is HANG:
                await trio.sleep_forever()
            elif isinstance(item, VStreamError):
                raise item
            else:
                assert isinstance(item, query.StreamHealthResponse)
                yield item


class FakeDirectory:
    def __init__(self, *sources: FakeSource) -> None:
        self.by_alias = {s.tablet.alias: s for s in sources}

    def source_for(self, tablet: TabletInfo) -> FakeSource:
        return self.by_alias[tablet.alias]


def tablet(cell: str, uid: int, tablet_type: topodata.TabletType = REPLICA) -> TabletInfo:
    return TabletInfo("ks", "-80", cell, uid, tablet_type)


def setup(
    *sources: FakeSource,
    tablet_type: topodata.TabletType = REPLICA,
    cells: list[str] | None = None,
    cell_preference: str = "preferlocalwithalias",
) -> tuple[Topology, TabletPicker]:
    topo = Topology(
        cell="zone1",
        keyspaces={"ks": KeyspaceInfo("ks", ["-80"])},
        tablets=[s.tablet for s in sources],
    )
    picker = TabletPicker(
        topo,
        FakeDirectory(*sources),
        SETTINGS,
        tablet_type=tablet_type,
        cells=cells or ["zone1"],
        cell_preference=cell_preference,
        rng=random.Random(0),
    )
    return topo, picker


# -- pick -------------------------------------------------------------------------------


async def test_primary_is_taken_without_a_probe(autojump_clock: trio.abc.Clock) -> None:
    primary = FakeSource(tablet("zone2", 100, PRIMARY), [])
    replica = FakeSource(tablet("zone1", 101), HEALTHY)
    _, picker = setup(primary, replica, tablet_type=PRIMARY, cells=["zone1"])
    assert await picker.pick("ks", "-80") == primary.tablet
    assert trio.current_time() == 0
    assert primary.opened == [] and replica.opened == []


async def test_missing_primary_is_waited_for(autojump_clock: trio.abc.Clock) -> None:
    topo, picker = setup(tablet_type=PRIMARY)
    new_primary = tablet("zone1", 102, PRIMARY)
    async with trio.open_nursery() as nursery:

        async def failover() -> None:
            await trio.sleep(45)
            topo.tablets.append(new_primary)

        nursery.start_soon(failover)
        assert await picker.pick("ks", "-80") == new_primary
        assert trio.current_time() == 60  # the attempt after the primary appeared


async def test_first_healthy_in_order_wins(autojump_clock: trio.abc.Clock) -> None:
    lagging = FakeSource(tablet("zone1", 101), [(0.0, report(lag=31))])
    remote = FakeSource(tablet("zone2", 200), HEALTHY)
    local = FakeSource(tablet("zone1", 102), HEALTHY)
    _, picker = setup(lagging, remote, local, cells=["zone2", "zone1"])
    chosen = await picker.pick("ks", "-80")
    assert trio.current_time() == 0
    # zone1 is the gateway's cell, so its tablets come first; one of them is lagging.
    assert chosen == local.tablet
    # All candidates were probed together and every health stream was closed.
    assert lagging.opened == remote.opened == local.opened == [0]
    assert lagging.closed == remote.closed == local.closed == [0]


async def test_onlyspecified_keeps_the_requested_order(autojump_clock: trio.abc.Clock) -> None:
    local = FakeSource(tablet("zone1", 101), HEALTHY)
    remote = FakeSource(tablet("zone2", 200), HEALTHY)
    _, picker = setup(local, remote, cells=["zone2", "zone1"], cell_preference="onlyspecified")
    assert await picker.pick("ks", "-80") == remote.tablet


async def test_healthy_first_choice_cancels_slower_probes(
    autojump_clock: trio.abc.Clock,
) -> None:
    healthy = FakeSource(tablet("zone1", 101), HEALTHY)
    dead = FakeSource(tablet("zone2", 200), [(0.0, HANG)])
    _, picker = setup(dead, healthy, cells=["zone1", "zone2"])
    assert await picker.pick("ks", "-80") == healthy.tablet
    assert trio.current_time() == 0
    assert dead.opened == [0]
    assert dead.closed == [0]


async def test_hanging_probe_times_out_after_five_seconds(autojump_clock: trio.abc.Clock) -> None:
    dead = FakeSource(tablet("zone1", 101), [(0.0, HANG)])
    healthy = FakeSource(tablet("zone2", 200), HEALTHY)
    _, picker = setup(dead, healthy, cells=["zone1", "zone2"])
    assert await picker.pick("ks", "-80") == healthy.tablet
    assert trio.current_time() == 5
    assert healthy.closed == [0]  # probed at once, kept only until the local tablet answered
    assert dead.closed == [5]


async def test_gives_up_at_exactly_the_timeout(autojump_clock: trio.abc.Clock) -> None:
    sick = FakeSource(tablet("zone1", 101), [(0.0, report(health_error="mysqld is down"))])
    quiet = FakeSource(tablet("zone2", 200), [(1.0, HANG)])
    broken = FakeSource(
        tablet("zone2", 201), [(0.5, VStreamError(Code.UNAVAILABLE, "connection refused"))]
    )
    ended = FakeSource(tablet("zone2", 202), [])
    _, picker = setup(sick, quiet, broken, ended, cells=["zone1", "zone2"])
    with pytest.raises(VStreamError) as info:
        await picker.pick("ks", "-80")
    assert trio.current_time() == 90
    assert sick.opened == quiet.opened == [0, 30, 60]
    assert info.value.code == Code.UNAVAILABLE
    message = info.value.message
    assert message.startswith(
        "no healthy REPLICA tablet for ks/-80 in cells zone1,zone2 after 90s: "
    )
    assert "zone1-0000000101 is no longer healthy: mysqld is down" in message
    assert "zone2-0000000200 sent no health report within 5s" in message
    assert "zone2-0000000201 failed its health check: connection refused" in message
    assert "zone2-0000000202 ended its health stream without a report" in message


async def test_tablet_recovering_is_found_by_the_next_attempt(
    autojump_clock: trio.abc.Clock,
) -> None:
    def steps(now: float) -> Steps:
        return HEALTHY if now >= 40 else [(0.0, report(serving=False))]

    flaky = FakeSource(tablet("zone1", 101), steps)
    _, picker = setup(flaky)
    assert await picker.pick("ks", "-80") == flaky.tablet
    assert trio.current_time() == 60
    assert flaky.opened == [0, 30, 60]


async def test_ignored_tablets_are_not_probed(autojump_clock: trio.abc.Clock) -> None:
    bad = FakeSource(tablet("zone1", 101), HEALTHY)
    good = FakeSource(tablet("zone1", 102), HEALTHY)
    _, picker = setup(bad, good)
    assert await picker.pick("ks", "-80", frozenset({bad.tablet.alias})) == good.tablet
    assert bad.opened == []


async def test_every_candidate_ignored(autojump_clock: trio.abc.Clock) -> None:
    only = FakeSource(tablet("zone1", 100, PRIMARY), [])
    _, picker = setup(only, tablet_type=PRIMARY)
    with pytest.raises(VStreamError) as info:
        await picker.pick("ks", "-80", frozenset({only.tablet.alias}))
    assert trio.current_time() == 90
    assert info.value.message == (
        "no healthy PRIMARY tablet for ks/-80 in cells zone1 after 90s: "
        "every candidate lacks the stream's position (zone1-0000000100)"
    )


async def test_has_candidates_ignores_health_but_not_the_ignore_list() -> None:
    sick = FakeSource(tablet("zone1", 101), [])
    other = FakeSource(tablet("zone1", 102), [])
    _, picker = setup(sick, other)
    assert picker.has_candidates("ks", "-80", frozenset())
    assert picker.has_candidates("ks", "-80", frozenset({sick.tablet.alias}))
    assert not picker.has_candidates(
        "ks", "-80", frozenset({sick.tablet.alias, other.tablet.alias})
    )
    assert not picker.has_candidates("ks", "80-", frozenset())


async def test_no_tablet_at_all(autojump_clock: trio.abc.Clock) -> None:
    _, picker = setup(cells=["zone7"])
    with pytest.raises(VStreamError) as info:
        await picker.pick("ks", "-80")
    assert trio.current_time() == 90
    assert info.value.message.endswith("in cells zone7 after 90s: the topology has no such tablet")


async def test_cancel_during_pick_closes_probes(autojump_clock: trio.abc.Clock) -> None:
    dead = FakeSource(tablet("zone1", 101), [(0.0, HANG)])
    _, picker = setup(dead)
    with trio.move_on_after(32) as scope:
        await picker.pick("ks", "-80")
    assert scope.cancelled_caught
    assert trio.current_time() == 32
    assert dead.opened == [0, 30]
    assert dead.closed == [5, 32]


# -- watch_health -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(report(PRIMARY), "changed tablet type from REPLICA to PRIMARY", id="type"),
        pytest.param(
            report(health_error="replication stopped"),
            "is no longer healthy: replication stopped",
            id="health-error",
        ),
        pytest.param(report(lag=45), "has replication lag 45s, above the 30s limit", id="lag"),
        pytest.param(report(serving=False), "is not serving", id="not-serving"),
    ],
)
async def test_watch_raises_when_the_tablet_degrades(
    autojump_clock: trio.abc.Clock, bad: query.StreamHealthResponse, reason: str
) -> None:
    source = FakeSource(
        tablet("zone1", 101), [(0.0, report()), (20.0, report(lag=3)), (7.0, bad), (0.0, HANG)]
    )
    with pytest.raises(VStreamError) as info:
        await watch_health(source, REPLICA, SETTINGS)
    assert trio.current_time() == 27
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == f"tablet zone1-0000000101 {reason}, restarting vstream"
    assert source.closed == [27]


async def test_watch_raises_when_health_stream_ends(autojump_clock: trio.abc.Clock) -> None:
    source = FakeSource(tablet("zone1", 101), [(0.0, report()), (12.0, report())])
    with pytest.raises(VStreamError) as info:
        await watch_health(source, REPLICA, SETTINGS)
    assert trio.current_time() == 12
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == (
        "tablet zone1-0000000101 stopped reporting health, restarting vstream"
    )


async def test_watch_turns_health_stream_errors_into_unavailable(
    autojump_clock: trio.abc.Clock,
) -> None:
    source = FakeSource(
        tablet("zone1", 101), [(3.0, VStreamError(Code.INTERNAL, "zone1-0000000101: boom"))]
    )
    with pytest.raises(VStreamError) as info:
        await watch_health(source, REPLICA, SETTINGS)
    assert trio.current_time() == 3
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == (
        "tablet zone1-0000000101 health stream failed (zone1-0000000101: boom), restarting vstream"
    )


async def test_watch_ignores_lag_of_a_primary(autojump_clock: trio.abc.Clock) -> None:
    lagging = report(PRIMARY, lag=500)
    source = FakeSource(tablet("zone1", 100, PRIMARY), [(0.0, lagging), *[(20.0, lagging)] * 5])
    with trio.move_on_after(100):
        await watch_health(source, PRIMARY, SETTINGS)
    assert trio.current_time() == 100


async def test_watch_raises_when_an_open_health_stream_goes_silent(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Reports at 0, 20 and 40 s, then nothing while the stream stays open.
    steps: Steps = [(0.0, report()), (20.0, report()), (20.0, report()), (0.0, HANG)]
    source = FakeSource(tablet("zone1", 101), steps)
    with trio.fail_after(1000), pytest.raises(VStreamError) as info:  # fails, not hangs
        await watch_health(source, REPLICA, SETTINGS)
    assert trio.current_time() == 40 + SETTINGS.health_report_timeout
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == (
        "tablet zone1-0000000101 sent no health report for 60s, restarting vstream"
    )
    assert source.closed == [100]


async def test_watch_keeps_a_tablet_that_reports_just_inside_the_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    every = SETTINGS.health_report_timeout - 1
    source = FakeSource(tablet("zone1", 101), [(0.0, report()), *[(every, report())] * 10])
    with trio.move_on_after(9 * every):
        await watch_health(source, REPLICA, SETTINGS)
    assert trio.current_time() == 9 * every


async def test_watch_cancel_closes_the_stream(autojump_clock: trio.abc.Clock) -> None:
    source = FakeSource(tablet("zone1", 101), HEALTHY)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_health, source, REPLICA, SETTINGS)
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert trio.current_time() == 3
    assert source.opened == [0]
    assert source.closed == [3]
