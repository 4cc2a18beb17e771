"""Retries through a session: the error table, give-up, positions, mid-chunk failure."""

from __future__ import annotations

import pytest
import trio

from tests.mux.scripted import (
    HANG,
    Client,
    Cluster,
    T,
    begin,
    commit,
    gtid,
    log_position,
    outcome_within,
    request,
    row,
)
from vsmux.errors import Code, VStreamError
from vsmux.mux import run_vstream
from vsmux.proto import topodata

REPLICA = topodata.TabletType.REPLICA
PURGED = (
    "stream (at source tablet) error @ 013c5ddc-dd89-11ed-b3a1-125a006436b9:1-305627274: "
    "Cannot replicate because the source purged required binary logs. (errno 1236) "
    "(sqlstate HY000)"
)
PURGED_GTIDS = (
    "Cannot replicate because the source purged required binary logs. The GTID set sent "
    "by the replica is 'a:1-5', and the required GTID set is 'a:1-9' (errno 1789) "
    "(sqlstate HY000)"
)
TIMEOUT = (
    "Query execution was interrupted, maximum statement execution time exceeded "
    "(errno 3024) (sqlstate HY000)"
)


@pytest.mark.parametrize(
    ("code", "message", "retried", "other_tablet"),
    [
        (Code.FAILED_PRECONDITION, "not serving", True, False),
        (Code.INVALID_ARGUMENT, "GTIDSet Mismatch aa", True, True),
        (Code.UNAVAILABLE, "connection refused", True, False),
        (Code.INVALID_ARGUMENT, "final error", False, False),
        (Code.UNKNOWN, PURGED, True, True),
        (Code.UNKNOWN, PURGED_GTIDS, True, True),
        (Code.INTERNAL, "internal error", False, False),
        (Code.UNKNOWN, TIMEOUT, True, False),
    ],
)
async def test_retriable_error_table(
    autojump_clock: trio.abc.Clock,
    code: Code,
    message: str,
    retried: bool,
    other_tablet: bool,
) -> None:
    cluster = Cluster()
    a = cluster.scripted("ks", "-20", tablet_type=REPLICA)
    b = cluster.scripted("ks", "-20", tablet_type=REPLICA)
    shared = [[VStreamError(code, message)], [[gtid("MySQL56/a:1-9"), commit()], 5.0]]
    a.attempts = b.attempts = shared  # whichever tablet is picked plays the next attempt
    client = Client()
    req = request(("ks", "-20", "current"), tablet_type=REPLICA)
    outcome = await outcome_within(3.0, req, cluster.gateway(), client)
    if retried:
        assert outcome is None
        assert client.types() == [T.VGTID, T.COMMIT]
        if other_tablet:
            assert (len(a.requests), len(b.requests)) == (1, 1)
        else:
            assert len(a.requests) + len(b.requests) == 2
    else:
        assert outcome is not None and outcome.code == code and message in outcome.message
        assert client.events == []
        assert len(a.requests) + len(b.requests) == 1
    assert cluster.open_streams() == 0


async def test_three_consecutive_failures_give_up(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    error = VStreamError(Code.UNAVAILABLE, "tablet restarting")
    tablet = cluster.scripted("ks", "-20", [error], [error], [error], [HANG])
    # The retry policy alone (tests/mux/test_failover.py: a PRIMARY first waits in
    # the failover buffer).
    gateway = cluster.gateway(
        retry_backoff_initial=1.0, retry_backoff_max=10.0, failover_buffer_enabled=False
    )
    with pytest.raises(VStreamError) as info:
        await run_vstream(
            request(("ks", "-20", "current")),
            gateway,
            Client(),
        )
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == (
        f"persistent error in vstream for ks/-20 on tablet {tablet.tablet.alias}; "
        "giving up: tablet restarting"
    )
    assert len(tablet.requests) == 3
    # Two backoffs: [0.5, 1.0] then [1.0, 2.0] (equal jitter, doubling).
    assert 1.5 <= trio.current_time() <= 3.0
    assert gateway.metrics.total("VStreamsEndedWithErrors") == 1


async def test_events_reset_the_failure_count(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    error = VStreamError(Code.UNAVAILABLE, "blip")
    attempts = [[[gtid(f"MySQL56/a:1-{i}"), commit()], error] for i in range(1, 6)]
    tablet = cluster.scripted("ks", "-20", *attempts, [HANG])
    client = Client()
    with trio.move_on_after(60):
        await run_vstream(request(("ks", "-20", "current")), cluster.gateway(), client)
    assert len(tablet.requests) == 6
    assert client.types() == [T.VGTID, T.COMMIT] * 5
    # Each retry restarted from the position the client had.
    assert [r.position for r in tablet.requests] == ["current"] + [
        f"MySQL56/a:1-{i}" for i in range(1, 6)
    ]


async def test_stream_that_ends_is_retried(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    tablet = cluster.scripted("ks", "-20", [], [[gtid("MySQL56/a:1-1"), commit()], HANG])
    client = Client()
    with trio.move_on_after(10):
        await run_vstream(request(("ks", "-20", "current")), cluster.gateway(), client)
    assert len(tablet.requests) == 2
    assert client.types() == [T.VGTID, T.COMMIT]


async def test_retry_resumes_after_delivered_units_no_loss_no_duplicate(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A slow client: the streamer queues units, then the tablet fails. The retry
    # must wait until the queued units are delivered and restart after them.
    transactions = [[begin(), row("t1", str(i).encode()), commit()] for i in range(40)]
    cluster = Cluster()
    tablet = cluster.log("ks", "-20", transactions, fail_after={0: 25, 1: 7}, split=2)
    client = Client()

    async def slow(bodies: list[bytes]) -> None:
        await trio.sleep(0.5)
        await client(bodies)

    with trio.move_on_after(600):
        await run_vstream(
            request(("ks", "-20", "current")), cluster.gateway(unit_queue_size=2), slow
        )
    values = [e.row_event.row_changes[0].after.values for e in client.events if e.type == T.ROW]
    assert values == [str(i).encode() for i in range(40)]
    vgtids = [e.vgtid.shard_gtids[0].gtid for e in client.events if e.type == T.VGTID]
    assert vgtids == [log_position(i) for i in range(1, 41)]
    assert len(tablet.requests) == 3
    # Restarts came from delivered positions.
    assert tablet.requests[1].position == log_position(12)
    assert tablet.requests[2].position.startswith("MySQL56/")


async def test_failure_mid_chunk_fails_cleanly(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    rows = [[row("t1", b"x" * 100)] for _ in range(5)]
    tablet = cluster.scripted(
        "ks",
        "-20",
        [[begin()], *rows, VStreamError(Code.UNAVAILABLE, "tablet went away")],
        [[begin(), row(), gtid("MySQL56/a:1-1"), commit()], HANG],
    )
    other = cluster.scripted("ks", "20-40", [HANG])
    client = Client()
    req = request(("ks", "-20", "current"), ("ks", "20-40", "current"), transaction_chunk_size=150)
    with trio.fail_after(60), pytest.raises(VStreamError) as info:
        await run_vstream(req, cluster.gateway(), client)
    assert info.value.code == Code.UNAVAILABLE
    assert "middle of a chunked transaction" in info.value.message
    assert "tablet went away" in info.value.message
    assert len(tablet.requests) == 1  # never silently retried
    assert client.types()[0] == T.BEGIN and T.COMMIT not in client.types()
    assert len(other.requests) == 1
    assert cluster.open_streams() == 0


async def test_a_lost_position_on_the_only_tablet_fails_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    primary = cluster.scripted(
        "ks", "-20", [[gtid("MySQL56/a:1-9"), commit()], 5.0, VStreamError(Code.UNKNOWN, PURGED)]
    )
    client = Client()
    gateway = cluster.gateway(retry_backoff_initial=1.0)
    with pytest.raises(VStreamError) as info:
        await run_vstream(request(("ks", "-20", "current")), gateway, client)
    # No backoff, no 90 s tablet pick: the tablet's own error as soon as it came.
    assert trio.current_time() == 5.0
    assert info.value.code == Code.UNKNOWN
    assert info.value.message == (
        f"vstream for ks/-20 cannot continue: PRIMARY tablet {primary.tablet.alias} does not "
        f"have the stream's position: {PURGED}; no other tablet can serve it, so restart the "
        'stream from a newer position (a later vgtid, or "current") or copy the tables again'
    )
    assert client.types() == [T.VGTID, T.COMMIT]
    assert len(primary.requests) == 1
    assert cluster.open_streams() == 0


async def test_every_replica_losing_the_position_fails_with_the_last_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    mismatch = VStreamError(Code.INVALID_ARGUMENT, "GTIDSet Mismatch: a:1-9 vs a:1-3")
    a = cluster.scripted("ks", "-20", tablet_type=REPLICA)
    b = cluster.scripted("ks", "-20", tablet_type=REPLICA)
    a.attempts = b.attempts = [[2.0, mismatch], [3.0, VStreamError(Code.UNKNOWN, PURGED)]]
    gateway = cluster.gateway(retry_backoff_initial=0.0)
    with pytest.raises(VStreamError) as info:
        await run_vstream(request(("ks", "-20", "current"), tablet_type=REPLICA), gateway, Client())
    # 2 s on the first tablet, a zero backoff, 3 s on the second: then at once.
    assert trio.current_time() == 5.0
    assert info.value.code == Code.UNKNOWN
    assert (len(a.requests), len(b.requests)) == (1, 1)
    # The error names the tablet that failed last and the one ruled out before it.
    x, y = a.tablet.alias, b.tablet.alias
    assert any(
        info.value.message.startswith(
            f"vstream for ks/-20 cannot continue: REPLICA tablet {last} does not have the "
            f"stream's position (nor do {earlier}): {PURGED}; "
        )
        for last, earlier in ((x, y), (y, x))
    )
    assert cluster.open_streams() == 0
