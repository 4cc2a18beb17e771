"""Sharing tablet streams changes nothing a client can see.

Shard streams that ask one tablet for the same events read one tablet stream
(a feed): they join its ring, catch up privately and are handed over, or are
detached when they hold it up. None of that may show: every client must get
exactly the units it would have got with sharing off.

The property test draws random scenarios (:mod:`tests.mux.feed_scenarios`):
a workload (with schema changes and large transactions) with tablet
failures and a reshard (a split, or a merge whose two participants meet at
the journal), clients that arrive at random times, start at ``current`` or
at a VGtid an earlier client received, read at random speeds and disconnect
and resume from their last VGtid (some from replicas, with a filter, with
journals or with minimize_skew). Small rings, join distances
and straggler bounds make joins, hand-overs and detaches happen. Each
client's request is then streamed again through a gateway without feeds,
from the same start, and the two must agree shard by shard: the same units
in the same order (positions, rows with the fields in force, DDLs,
journals), each response holding one unit at most, every ROW after a FIELD
of its table on the same call. FIELDs themselves may repeat (after a
reconnect, a join or a hand-over), so they are compared only through the
rows they describe.

Everything runs on Trio's MockClock, inside ``trio.run`` per example (pytest
fixtures and hypothesis examples do not mix).

Below it: one fixed scenario that joins, hands over and detaches (so the
paths are covered on every run, not just by chance), one where a merge's
participant reopens past its journal (the heartbeat rule), a check that the
framing checker sees bad framing, and regression tests for the two races
the property test found (a feed or a health watch taking a newcomer while
it was closing).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager

import trio
import trio.testing
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tests.mux.feed_scenarios import (
    KS,
    PRIMARY,
    ClientPlan,
    Connection,
    Failure,
    Outcome,
    Scenario,
    T,
    Unit,
    by_shard,
    delivered,
    run_scenario,
)
from vsmux.core.settings import GatewaySettings
from vsmux.mux import open_feed_hub
from vsmux.mux.shared_health import SharedHealth
from vsmux.proto import binlogdata, query, vtgate
from vsmux.sources._simulated import SimulatedCluster
from vsmux.topology import TabletInfo
from vsmux.wire import Frame


def play(scenario: Scenario) -> Outcome:
    return trio.run(run_scenario, scenario, clock=trio.testing.MockClock(autojump_threshold=0))


def assert_as_without_sharing(outcome: Outcome) -> None:
    """Every client received what the same request without feeds delivers."""
    for index, run in enumerate(outcome.clients):
        assert run.oracle is not None, f"client {index} was not replayed"
        for number, conn in enumerate([*run.connections, run.oracle]):
            assert conn.problems == [], f"client {index}, connection {number}: {conn.problems}"
        got = delivered(run)
        expected = {s: units for s, units in by_shard(run.oracle.units).items() if units}
        assert sorted(got) == sorted(expected), f"client {index}: shards"
        for shard, units in expected.items():
            mine = got[shard]
            if mine != units:
                first = next(
                    (i for i, (a, b) in enumerate(zip(mine, units, strict=False)) if a != b),
                    min(len(mine), len(units)),
                )
                raise AssertionError(
                    f"client {index} ({run.plan}), shard {shard}: {len(mine)} units, "
                    f"expected {len(units)}; first difference at {first}: "
                    f"got {[u.brief() for u in mine[first : first + 2]]}, "
                    f"expected {[u.brief() for u in units[first : first + 2]]}"
                    + _how_they_differ(mine[first : first + 1], units[first : first + 1])
                )


def _how_they_differ(got: list[Unit], expected: list[Unit]) -> str:
    """For two units at the same position: the first item that differs, and how."""
    if len(got) != 1 or len(expected) != 1 or got[0].brief() != expected[0].brief():
        return ""
    for i, (a, b) in enumerate(zip(got[0].payload, expected[0].payload, strict=True)):
        if a != b:
            what = "its fields in force" if a[:2] == b[:2] else "its content"
            return f"; item {i} ({a[0]}) differs in {what}"
    return ""


# -- scenarios ---------------------------------------------------------------------

clients = st.builds(
    ClientPlan,
    arrives=st.floats(0.0, 12.0),
    start=st.none() | st.floats(0.0, 1.0),
    delay=st.sampled_from([0.0, 0.0, 0.005, 0.03, 0.1, 0.3]),
    breaks=st.lists(st.tuples(st.floats(0.1, 6.0), st.floats(0.0, 3.0)), max_size=2).map(tuple),
    journals=st.booleans(),
    tables=st.sampled_from([None, None, "/.*", "/customer|corder"]),
    replica=st.booleans(),
    skew=st.booleans(),
)

failures = st.builds(
    Failure,
    at=st.floats(0.0, 12.0),
    shard_index=st.integers(0, 2),
    events=st.integers(0, 40),
    mid_transaction=st.booleans(),
    replica=st.booleans(),
    ends=st.booleans(),
)

share_settings = st.builds(
    GatewaySettings,
    share_ring_bytes=st.integers(2_000, 20_000),
    share_straggler_seconds=st.sampled_from([0.3, 0.5, 1.0]),
    share_linger_seconds=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    share_join_transactions=st.integers(2, 40),
    share_join_seconds=st.sampled_from([60.0, 1.0]),
    share_max_feeds=st.sampled_from([256, 256, 2]),
    max_response_bytes=st.sampled_from([2 * 1024 * 1024, 3_000]),
)

scenarios = st.builds(
    Scenario,
    seed=st.integers(0, 2**16),
    rate=st.sampled_from([10.0, 20.0, 40.0]),
    transactions=st.integers(60, 200),
    ddl_probability=st.sampled_from([0.0, 0.02, 0.1]),
    large_probability=st.sampled_from([0.0, 0.02]),
    reshard_at=st.floats(1.0, 8.0),
    clients=st.lists(clients, min_size=2, max_size=5).map(tuple),
    # Fewer than max_consecutive_failures (3): that many on one tablet at
    # once make any shard stream give up, shared or not.
    failures=st.lists(failures, max_size=2).map(tuple),
    settings=share_settings,
    merge=st.booleans(),
)


# No shrinking: an example takes up to a second and shrinking one took minutes.
# A failure prints its whole scenario and a blob to replay it (Trio still
# varies the order of tasks that are ready at once, so a race may need a few runs).
# VSMUX_PROPERTY_EXAMPLES asks for more examples than the 30 of a test run.
@settings(
    max_examples=int(os.environ.get("VSMUX_PROPERTY_EXAMPLES", "30")),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios)
def test_clients_receive_what_they_would_without_sharing(scenario: Scenario) -> None:
    outcome = play(scenario)
    counters = outcome.counters
    for name in ("joins", "handovers", "detaches", "private_streams"):
        event(f"{name}: {'yes' if getattr(counters, name) else 'no'}")
    assert_as_without_sharing(outcome)


def test_joins_handovers_and_detaches_deliver_as_without_sharing() -> None:
    """One scenario that takes every way in and out of a feed, checked the same way.

    A fast client opens the feeds; a slow one (0.3 s per response, with a
    ring of 4 KB) holds them up and is detached to a private stream, then
    handed back once the workload stops; one disconnects and resumes; one
    starts far behind (at the first VGtid the first client received) and
    catches up privately before it is handed over. A tablet fails inside a
    transaction and the keyspace is resharded meanwhile.
    """
    scenario = Scenario(
        seed=1,
        rate=20.0,
        transactions=160,
        ddl_probability=0.1,
        large_probability=0.02,
        reshard_at=5.0,
        clients=(
            ClientPlan(arrives=0.0, start=None, delay=0.0),
            ClientPlan(arrives=1.0, start=None, delay=0.3, journals=True),
            ClientPlan(arrives=2.0, start=None, delay=0.0, breaks=((2.0, 1.0),)),
            ClientPlan(arrives=4.0, start=0.0, delay=0.0),
        ),
        failures=(Failure(at=3.0, shard_index=0, events=10, mid_transaction=True),),
        settings=GatewaySettings(
            share_ring_bytes=4_000,
            share_straggler_seconds=0.5,
            share_linger_seconds=1.0,
            share_join_transactions=5,
            max_response_bytes=3_000,
        ),
    )
    outcome = play(scenario)
    counters = outcome.counters
    assert counters.joins > 0
    assert counters.handovers > 0
    assert counters.detaches > 0
    assert outcome.clients[3].start is not None  # it did start from a received VGtid
    assert_as_without_sharing(outcome)


def test_a_merge_participant_reopened_past_its_journal_delivers_as_without_sharing() -> None:
    """The heartbeat rule through feeds, checked against the plain gateway.

    -40 and 40-80 merge at 5 s. The one client comes at 4.4 s; 40-80's
    primary fails its first send (armed at 1 s, when nobody streams from
    it), so its stream retries after 1-2 s, at ``current``, past its
    journal. -40 reads the journal; 40-80's next tablet heartbeat brings it
    to the journal too, and the client goes on with -80. The replay without
    feeds starts 40-80 at that same position past the journal.
    """
    scenario = Scenario(
        seed=5,
        rate=20.0,
        transactions=160,
        ddl_probability=0.0,
        large_probability=0.0,
        reshard_at=5.0,
        clients=(ClientPlan(arrives=4.4, start=None, delay=0.0),),
        failures=(Failure(at=1.0, shard_index=1, events=0, mid_transaction=False),),
        settings=GatewaySettings(
            retry_backoff_initial=2.0, retry_backoff_max=2.0, failover_buffer_enabled=False
        ),
        merge=True,
    )
    outcome = play(scenario)
    assert_as_without_sharing(outcome)
    run = outcome.clients[0]
    first = run.connections[0].vgtids[0]
    assert {sg.shard for sg in first.shard_gtids} == {"-40", "40-80", "80-"}
    shards = {sg.shard for sg in run.connections[-1].vgtids[-1].shard_gtids}
    assert shards == {"-80", "80-"}


def _response(*events: binlogdata.VEvent) -> bytes:
    return bytes(vtgate.VStreamResponse(events=list(events)))


def test_the_framing_check_flags_two_units_in_one_response() -> None:
    """The checks above are only as good as the recorder: it must see bad framing."""

    def unit(shard: str, gtid: str) -> list[binlogdata.VEvent]:
        vgtid = binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace=KS, shard=shard, gtid=gtid)]
        )
        return [
            binlogdata.VEvent(type=T.BEGIN, keyspace=KS, shard=shard),
            binlogdata.VEvent(type=T.VGTID, vgtid=vgtid, keyspace=KS, shard=shard),
            binlogdata.VEvent(type=T.COMMIT, keyspace=KS, shard=shard),
        ]

    good = Connection()
    good.apply_response(_response(*unit("-80", "a:1")))
    good.apply_response(_response(*unit("80-", "b:1")))
    assert good.problems == []
    assert [u.brief() for u in good.units] == [
        "-80@a:1 COMMIT (0 items)",
        "80-@b:1 COMMIT (0 items)",
    ]

    two = Connection()
    two.apply_response(_response(*unit("-80", "a:1"), *unit("-80", "a:2")))
    assert any("ends a unit before more events" in p for p in two.problems)

    split = Connection()
    split.apply_response(_response(unit("-80", "a:1")[0]))  # a BEGIN, to be continued...
    split.apply_response(_response(*unit("80-", "b:1")))  # ...interrupted by another one
    assert any("80- inside a unit of -80" in p for p in split.problems)


class _ReportingTablet:
    """A tablet whose health stream reports once a second until it is closed."""

    def __init__(self) -> None:
        self.streams = 0

    @property
    def tablet(self) -> TabletInfo:
        return TabletInfo(cell="zone1", uid=100, keyspace=KS, shard="-80", tablet_type=PRIMARY)

    def vstream(
        self, request: binlogdata.VStreamRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
        raise NotImplementedError

    @asynccontextmanager
    async def stream_health(self) -> AsyncIterator[AsyncIterator[query.StreamHealthResponse]]:
        self.streams += 1

        async def reports() -> AsyncGenerator[query.StreamHealthResponse, None]:
            while True:
                yield query.StreamHealthResponse(serving=True)
                await trio.sleep(1.0)

        async with aclosing(reports()) as stream:
            yield stream


async def test_a_health_watcher_that_comes_as_the_last_one_leaves_gets_reports(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Found by the property test with ``share_linger_seconds=0``.

    A shard stream that retries leaves its tablet's shared health watch and
    watches again a moment later. If the upstream health stream was already
    closing (no watcher left, no linger), the new watcher must get a stream
    of its own, not follow the closing one to its end: an ended health stream
    means "the tablet stopped reporting health", so the retry failed again,
    and after three such failures the request gave up.
    """
    tablet = _ReportingTablet()
    async with trio.open_nursery() as nursery:
        health = SharedHealth(tablet, nursery, linger=0.0)
        for pause in range(6):  # the moment the new watcher comes, in scheduler turns
            async with health.watch() as reports:
                await anext(reports)
            for _ in range(pause):
                await trio.lowlevel.checkpoint()
            async with health.watch() as reports:
                with trio.fail_after(5):
                    for _ in range(3):  # the latest report, then new ones
                        assert await anext(reports, None) is not None, f"ended ({pause} turns)"
        nursery.cancel_scope.cancel()
    assert tablet.streams >= 2


async def test_a_stream_never_attaches_to_a_feed_that_is_closing(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Found by the property test with ``share_linger_seconds=0``.

    A feed whose last consumer has left closes its tablet stream. A shard
    stream that comes before the feed's task has finished (a straggler
    handed back at once, or a client reconnecting) must get a feed of its
    own, not be attached to the closing one and fail with "the gateway is
    stopping": a few of those in a row made a request give up.
    """
    cluster = SimulatedCluster.build({KS: ["-80", "80-"]}, seed=3, ddl_probability=0.0)
    cluster.apply_random_transactions(10, KS)
    tablet = cluster.tablet(KS, "-80").tablet
    request = binlogdata.VStreamRequest(
        target=query.Target(keyspace=KS, shard="-80", tablet_type=PRIMARY, cell=tablet.cell),
        position=cluster.position(KS, "-80"),
    )
    settings = GatewaySettings(share_linger_seconds=0.0)
    async with open_feed_hub(cluster, cluster.topology, settings) as hub:
        source = hub.directory.source_for(tablet)
        for pause in range(6):  # when the next stream comes, in scheduler turns
            async with source.vstream(request) as batches:
                await anext(batches)  # the tablet's first response
            for _ in range(pause):
                await trio.lowlevel.checkpoint()
            async with source.vstream(request) as batches:
                with trio.fail_after(5):
                    await anext(batches)  # the bug: UNAVAILABLE, the feed was closed
        assert hub.counters.feeds_opened >= 2
