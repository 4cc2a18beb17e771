"""Scenarios of vtgate's own VStream manager tests, run through a vsmux session.

The tests here mirror those of Vitess's ``go/vt/vtgate/vstream_manager_test.go``
that the rest of the suite did not already check in the same shape; each names
the vtgate test in its docstring. Tablets are scripted (:mod:`tests.mux.scripted`)
and time is Trio's mock clock. Where vsmux deliberately does better than vtgate
(``reference/vstream-semantics.md``), the test checks vsmux's documented behaviour
and its docstring says so.

The other vtgate tests and where the same behaviour is checked:

- TestVStreamEvents: test_session.py::test_events_get_keyspace_prefix_and_vgtid,
  test_sender_coalescing.py::test_units_of_one_parcel_get_a_response_each
- TestVStreamEventsExcludeKeyspaceFromTableName:
  test_session.py::test_exclude_keyspace_from_table_name
- TestVStreamChunks: test_session.py::test_transaction_split_over_batches_is_contiguous
- TestVStreamMulti: test_session.py::test_multi_shard_vgtid_is_cumulative
- TestVStreamRetriableErrors: test_session_retry.py::test_retriable_error_table
  (here: the same cases with the tablets in two cells, as vtgate has them)
- TestVStreamJournalOneToMany / ManyToOne / PartialMatch:
  test_session_journal.py::test_journal_one_to_many, ::test_journal_many_to_one,
  ::test_journal_partial_match_fails
- TestResolveVStreamParams: tests/core/test_resolve.py (test_expansion, test_errors,
  test_defaults, test_explicit_values_are_kept)
- TestVStreamIdleHeartbeat: test_sender_timing.py::test_idle_heartbeat_counts
- TestVStreamManagerGetCells: the gateway's cell by default and the requested cells
  otherwise, tests/core/test_resolve.py::test_defaults and
  ::test_explicit_values_are_kept. vsmux does not model cell aliases, and uses only
  the requested cells where vtgate also adds its own cell
  (vsmux/core/picking.py; tests/core/test_picking.py::test_candidates).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from tests.mux.scripted import (
    HANG,
    Client,
    Cluster,
    ScriptedTablet,
    Step,
    T,
    commit,
    ddl,
    ev,
    field,
    gtid,
    healthy,
    heartbeat,
    journal,
    outcome_within,
    request,
    row,
)
from vsmux.errors import Code, VStreamError
from vsmux.mux import run_vstream
from vsmux.proto import binlogdata, query, topodata, vtgate
from vsmux.topology import TabletInfo
from vsmux.wire import Frame

P = "MySQL56/"
NS = 1_000_000_000
# The tablets' wall clock (seconds) in the scenarios that carry event times.
NOW = 1_700_000_000
REPLICA = topodata.TabletType.REPLICA


def sg(ks: str, shard: str, g: str) -> binlogdata.ShardGtid:
    return binlogdata.ShardGtid(keyspace=ks, shard=shard, gtid=g)


async def collect(
    cluster: Cluster, req: vtgate.VStreamRequest, count: int, **settings: object
) -> tuple[Client, float]:
    """Run ``req`` until ``count`` events arrived, then cancel it; the client and the time."""
    client = Client()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, req, cluster.gateway(**settings), client)
        with trio.fail_after(60):
            while len(client.events) < count:
                await client.received.wait()
        done = trio.current_time()
        nursery.cancel_scope.cancel()
    assert cluster.open_streams() == 0
    return client, done


# -- TestVStreamSkew ------------------------------------------------------------------


def paced(keyspace: str, shard: str, count: int, idx: int) -> list[Step]:
    """vtgate's ``getVEvents`` + ``stream``: GTID/COMMIT pairs, ``j`` = i + idx seconds
    old (i from ``count`` down to 1), each event its own message, ``idx`` * 100 ms apart."""
    steps: list[Step] = []
    for i in range(count, 0, -1):
        j = i + idx
        ts, ct = NOW - j, NOW * NS
        for frame in (
            ev(T.GTID, gtid=f"{P}gtid-{shard}-{j}", timestamp=ts, current_time=ct),
            commit(ts, ct),
        ):
            steps += [[frame], idx * 0.1]
    return [*steps, HANG]


@pytest.mark.parametrize(
    ("shard0idx", "shard1idx", "delays"),
    [
        pytest.param(1, 2, 3, id="shard1-behind"),
        pytest.param(1, 1, 0, id="aligned"),
        pytest.param(0, 1, 0, id="only-shard1"),
        pytest.param(1, 0, 0, id="only-shard0"),
    ],
)
async def test_skew(
    autojump_clock: trio.abc.Clock, shard0idx: int, shard1idx: int, delays: int
) -> None:
    """Mirrors vtgate's TestVStreamSkew: with minimize_skew every event arrives; a
    stream more than 2 s ahead of the slowest waits (counted in
    VStreamEventsDelayedBySkewAlignment); aligned streams and a single stream never wait.

    With shard1 behind, vtgate expects 2 delays: it reads its clock in whole seconds
    (``time.Now().Unix()`` in computeSkew), so shard0's second transaction, 2.1 s
    ahead of shard1's first, looks exactly 2 s ahead and goes. vsmux applies
    vstream-semantics.md section 5 with the gateway's clock as it is: that
    transaction is more than 2 s ahead and waits too, for 3 delays, all shard0's."""
    cluster = Cluster()
    shards: list[tuple[str, str, str]] = []
    for shard, idx in (("-20", shard0idx), ("20-40", shard1idx)):
        if idx:
            cluster.scripted("ks", shard, paced("ks", shard, 4, idx))
            shards.append(("ks", shard, "current"))
    gateway = cluster.gateway()
    client = Client()
    want = 2 * 4 * len(shards)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, request(*shards, minimize_skew=True), gateway, client)
        with trio.fail_after(60):
            while len(client.events) < want:
                await client.received.wait()
        nursery.cancel_scope.cancel()
    assert len(client.events) == want
    assert client.types() == [T.VGTID, T.COMMIT] * (want // 2)
    metrics = gateway.metrics
    assert metrics.total("VStreamEventsDelayedBySkewAlignment") == delays
    assert metrics.get("VStreamEventsDelayedBySkewAlignment", ("ks", "-20", "PRIMARY")) == delays
    assert cluster.open_streams() == 0


# -- TestVStreamsMetrics / TestVStreamsCreatedAndLagMetrics --------------------------


async def test_metrics_per_shard(autojump_clock: trio.abc.Clock) -> None:
    """Mirrors vtgate's TestVStreamsMetrics (TestVStreamsCreatedAndLagMetrics before it):
    per keyspace/shard/type, one stream counted while it runs and none after, one
    created, the lag of the last event, the events streamed, no error."""
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[gtid(P + "gtid01"), commit(10, 15 * NS)], HANG])
    cluster.scripted("ks", "20-40", [[gtid(P + "gtid02"), commit(10, 17 * NS)], HANG])
    gateway = cluster.gateway()
    m = gateway.metrics
    a, b = ("ks", "-20", "PRIMARY"), ("ks", "20-40", "PRIMARY")
    client = Client()
    async with trio.open_nursery() as nursery:
        req = request(("ks", "-20", "current"), ("ks", "20-40", "current"))
        nursery.start_soon(run_vstream, req, gateway, client)
        with trio.fail_after(60):
            while len(client.events) < 4:
                await client.received.wait()
        # While the request runs: one active stream per shard.
        assert (m.get("VStreamsCount", a), m.get("VStreamsCount", b)) == (1, 1)
        nursery.cancel_scope.cancel()
    assert sorted(client.types()) == sorted([T.VGTID, T.COMMIT] * 2)
    assert (m.get("VStreamsCount", a), m.get("VStreamsCount", b)) == (0, 0)
    assert (m.get("VStreamsCreated", a), m.get("VStreamsCreated", b)) == (1, 1)
    assert (m.get("VStreamsLag", a), m.get("VStreamsLag", b)) == (5, 7)
    assert (m.get("VStreamsEventsStreamed", a), m.get("VStreamsEventsStreamed", b)) == (2, 2)
    assert (m.get("VStreamsEndedWithErrors", a), m.get("VStreamsEndedWithErrors", b)) == (0, 0)
    assert cluster.open_streams() == 0


async def test_metrics_when_one_shard_fails(autojump_clock: trio.abc.Clock) -> None:
    """Mirrors vtgate's TestVStreamsMetricsErrors: one shard's INVALID_ARGUMENT ends the
    request with that error; at most the other shard's one transaction got out; the
    failing shard counts one VStreamsEndedWithErrors. The other shard's stream, ended
    by that error's cancellation, counts none (vtgate's test allows it 0 or 1, a race
    in vtgate; its code does not count a cancelled stream either)."""
    cluster = Cluster()
    cluster.scripted("ks", "-20", [VStreamError(Code.INVALID_ARGUMENT, "Invalid arg message")])
    cluster.scripted("ks", "20-40", [[gtid(P + "gtid02"), commit(10, 17 * NS)], HANG])
    gateway = cluster.gateway()
    client = Client()
    with pytest.raises(VStreamError) as info:
        await run_vstream(
            request(("ks", "-20", "current"), ("ks", "20-40", "current")), gateway, client
        )
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "Invalid arg message" in info.value.message
    assert len(client.responses) <= 1
    if client.responses:
        assert len(client.responses[0]) == 2
    m = gateway.metrics
    assert m.get("VStreamsEndedWithErrors", ("ks", "-20", "PRIMARY")) == 1
    assert m.get("VStreamsEndedWithErrors", ("ks", "20-40", "PRIMARY")) == 0
    assert m.total("VStreamsCount") == 0
    assert cluster.open_streams() == 0


# -- TestVStreamErrorInCallback -------------------------------------------------------


async def test_error_in_the_client_send_ends_the_request(autojump_clock: trio.abc.Clock) -> None:
    """Mirrors vtgate's TestVStreamErrorInCallback: when handing events to the client
    fails, the request ends with that very error and every stream is closed."""
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[gtid(P + "gtid01"), commit(10, 15 * NS)], HANG])
    cluster.scripted("ks", "20-40", [[gtid(P + "gtid02"), commit(10, 17 * NS)], HANG])
    expected = VStreamError(Code.UNAVAILABLE, "callback error")

    async def send(bodies: list[bytes]) -> None:
        raise expected

    gateway = cluster.gateway()
    with trio.fail_after(60), pytest.raises(VStreamError) as info:
        await run_vstream(
            request(("ks", "-20", "current"), ("ks", "20-40", "current")), gateway, send
        )
    assert info.value is expected
    assert trio.current_time() == 0.0
    assert gateway.metrics.total("VStreamsCount") == 0
    assert cluster.open_streams() == 0


async def test_a_bug_in_the_client_send_is_one_internal_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Mirrors vtgate's TestVStreamErrorInCallback for a send that fails with something
    other than a VStreamError: vsmux's contract (mux/api.py) is exactly one VStreamError,
    so it becomes INTERNAL naming the original exception."""
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[gtid(P + "gtid01"), commit()], HANG])

    async def send(bodies: list[bytes]) -> None:
        raise RuntimeError("callback error")

    with trio.fail_after(60), pytest.raises(VStreamError) as info:
        await run_vstream(request(("ks", "-20", "current")), cluster.gateway(), send)
    assert info.value.code == Code.INTERNAL
    assert info.value.message == "vstream failed unexpectedly: RuntimeError('callback error')"
    assert cluster.open_streams() == 0


# -- TestVStreamRetry -----------------------------------------------------------------


async def test_retry_until_three_consecutive_failures(autojump_clock: trio.abc.Clock) -> None:
    """Mirrors vtgate's TestVStreamRetry: COMMIT, error "aa", COMMIT, errors "bb", "cc",
    "final error" (FAILED_PRECONDITION): each error is retried, the COMMIT after "aa"
    resets the failure count, so the third consecutive failure ("final error") ends the
    request; both COMMITs reached the client, each in its own response. vsmux backs off
    between attempts (vtgate does not) and names the shard and tablet in the message."""

    def fp(message: str) -> VStreamError:
        return VStreamError(Code.FAILED_PRECONDITION, message)

    cluster = Cluster()
    tablet = cluster.scripted(
        "ks",
        "-20",
        [[commit()], fp("aa")],
        [[commit()], fp("bb")],
        [fp("cc")],
        [fp("final error")],
        [HANG],
    )
    gateway = cluster.gateway(failover_buffer_enabled=False)
    client = Client()
    with trio.fail_after(60), pytest.raises(VStreamError) as info:
        await run_vstream(request(("ks", "-20", "current")), gateway, client)
    assert info.value.code == Code.FAILED_PRECONDITION
    assert info.value.message == (
        f"persistent error in vstream for ks/-20 on tablet {tablet.tablet.alias}; "
        "giving up: final error"
    )
    assert client.responses == [[binlogdata.VEvent(type=T.COMMIT)]] * 2
    assert len(tablet.requests) == 4
    assert cluster.open_streams() == 0


# -- TestVStreamShouldNotSendSourceHeartbeats (TestVStreamHeartbeat) ------------------


async def test_source_heartbeats_are_not_sent(autojump_clock: trio.abc.Clock) -> None:
    """Mirrors vtgate's TestVStreamShouldNotSendSourceHeartbeats: tablet heartbeats,
    alone or inside a transaction, never reach the client; the transaction arrives
    whole in one response, its GTID turned into the VGTID."""
    cluster = Cluster()
    cluster.scripted(
        "ks",
        "-20",
        [
            [heartbeat()],
            [heartbeat(), gtid("gtid01"), field("f0"), heartbeat(), row("t0"), commit()],
            HANG,
        ],
    )
    client, _ = await collect(cluster, request(("ks", "-20", "current")), 4)
    assert len(client.responses) == 1
    vgtid, fld, rw, cmt = client.responses[0]
    assert vgtid.type == T.VGTID
    assert vgtid.vgtid == binlogdata.VGtid(shard_gtids=[sg("ks", "-20", "gtid01")])
    assert fld.type == T.FIELD and fld.field_event is not None
    assert fld.field_event.table_name == "ks.f0"
    assert rw.type == T.ROW and rw.row_event is not None
    assert rw.row_event.table_name == "ks.t0"
    assert cmt.type == T.COMMIT


# -- TestVStreamJournalNoMatch --------------------------------------------------------


def tables_journal(jid: int) -> Frame:
    return ev(
        T.JOURNAL,
        journal=binlogdata.Journal(id=jid, migration_type=binlogdata.MigrationType.TABLES),
    )


async def test_journals_that_do_not_concern_the_stream_are_dropped(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Mirrors vtgate's TestVStreamJournalNoMatch: a TABLES journal and a SHARDS journal
    none of whose participants is in the stream are dropped; the rest of their
    transactions, and the transactions around them, arrive one response each."""
    cluster = Cluster()
    shards_journal = journal(2, "ks", ["c0-e0", "e0-"], [("c0-", "posc0")])
    tablet = cluster.scripted(
        "ks",
        "-20",
        [
            [gtid("gtid01"), field("f0"), row("t0"), commit()],
            [tables_journal(1), gtid("jn1"), commit()],
            [gtid("gtid02"), ddl()],
            [shards_journal, gtid("jn2"), commit()],
            [gtid("gtid03"), ddl()],
            HANG,
        ],
    )
    client, _ = await collect(cluster, request(("ks", "-20", "current")), 12)
    assert [[e.type for e in r] for r in client.responses] == [
        [T.VGTID, T.FIELD, T.ROW, T.COMMIT],
        [T.VGTID, T.COMMIT],
        [T.VGTID, T.DDL],
        [T.VGTID, T.COMMIT],
        [T.VGTID, T.DDL],
    ]
    assert [r[0].vgtid for r in client.responses] == [
        binlogdata.VGtid(shard_gtids=[sg("ks", "-20", g)])
        for g in ("gtid01", "jn1", "gtid02", "jn2", "gtid03")
    ]
    assert len(tablet.requests) == 1  # no retry, no swap


# -- TestKeyspaceHasBeenSharded -------------------------------------------------------


async def test_a_vgtid_of_shards_no_longer_serving_follows_their_journal(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Mirrors vtgate's TestKeyspaceHasBeenSharded (the "traffic switched" cases): a
    VGtid naming shards whose traffic has moved to new shards still streams from the
    old shards' (non-serving) tablets, up to their journal, and then goes on from the
    new shards at the journal's positions."""
    cluster = Cluster()
    new_shards = ["-40", "40-80", "80-c0", "c0-"]
    jnl = journal(1, "ks", ["-80", "80-"], [(s, f"{P}new{s}") for s in new_shards])
    old = [
        cluster.scripted("ks", "-80", [[gtid(P + "a1"), commit()], [jnl], HANG]),
        cluster.scripted("ks", "80-", [[gtid(P + "b1"), commit()], 1.0, [jnl], HANG]),
    ]
    new = {s: cluster.scripted("ks", s, [[gtid(f"{P}{s}-1"), commit()], HANG]) for s in new_shards}
    # Traffic switched: only the new shards serve; the old tablets are still there.
    cluster.topology.keyspaces["ks"].shards[:] = new_shards
    assert cluster.topology.serving_shards("ks") == new_shards
    req = request(("ks", "-80", P + "a0"), ("ks", "80-", P + "b0"))
    client, done = await collect(cluster, req, 4 + 2 * len(new_shards))
    assert [len(t.requests) for t in old] == [1, 1]
    assert [t.requests[0].position for t in old] == [P + "a0", P + "b0"]
    assert {s: [r.position for r in t.requests] for s, t in new.items()} == {
        s: [f"{P}new{s}"] for s in new_shards
    }
    last = [e.vgtid for e in client.events if e.type == T.VGTID][-1]
    assert last is not None
    assert sorted(g.shard for g in last.shard_gtids) == sorted(new_shards)
    assert done == 1.0  # the new shards start once both old ones reached the journal


# -- TestVStreamManagerHealthCheckResponseHandling ------------------------------------


def _bad_report(kind: str, tablet: TabletInfo) -> query.StreamHealthResponse | VStreamError:
    """What vtgate's test makes the tablet's health check say, per case."""
    report = healthy(tablet)
    if kind == "failure":
        return VStreamError(Code.UNAVAILABLE, f"health check failed on {tablet.alias}")
    if kind == "type-changed":
        assert report.target is not None
        report.target.tablet_type = topodata.TabletType.PRIMARY
    elif kind == "unhealthy":
        report.realtime_stats = query.RealtimeStats(health_error="unhealthy")
    elif kind == "lag":
        report.realtime_stats = query.RealtimeStats(replication_lag_seconds=31)
    return report


@pytest.mark.parametrize("kind", ["failure", "type-changed", "unhealthy", "lag"])
async def test_a_tablet_whose_health_degrades_is_left_and_the_stream_restarts(
    autojump_clock: trio.abc.Clock, kind: str
) -> None:
    """Mirrors vtgate's TestVStreamManagerHealthCheckResponseHandling: a REPLICA whose
    health stream fails, whose type changes, that reports a health error, or whose
    replication lag passes the limit is left, and the shard stream restarts from the
    position the client has; the client sees no error."""
    cluster = Cluster()
    tablet = cluster.scripted(
        "ks",
        "0",
        [[gtid(P + "a:1-1"), commit()], HANG],
        [[gtid(P + "a:1-2"), commit()], HANG],
        tablet_type=REPLICA,
    )
    bad = _bad_report(kind, tablet.tablet)
    sent_bad = False

    @asynccontextmanager
    async def health() -> AsyncIterator[AsyncIterator[query.StreamHealthResponse]]:
        async def reports() -> AsyncIterator[query.StreamHealthResponse]:
            nonlocal sent_bad
            yield healthy(tablet.tablet)
            await trio.sleep_until(2.0)
            if not sent_bad:
                sent_bad = True
                if isinstance(bad, VStreamError):
                    raise bad
                yield bad
            await trio.sleep_forever()

        yield reports()

    tablet.stream_health = health  # type: ignore[method-assign]
    client, _ = await collect(cluster, request(("ks", "0", "current"), tablet_type=REPLICA), 4)
    assert sent_bad
    assert [r.position for r in tablet.requests] == ["current", P + "a:1-1"]
    assert client.types() == [T.VGTID, T.COMMIT] * 2


# -- TestVStreamRetriableErrors (two cells) -------------------------------------------

TIMEOUT = (
    "vttablet: rpc error: code = Unknown desc = Query execution was interrupted, maximum "
    "statement execution time exceeded (errno 3024) (sqlstate HY000)"
)


@pytest.mark.parametrize(
    ("code", "message", "retried", "other_tablet"),
    [
        pytest.param(Code.FAILED_PRECONDITION, "", True, False, id="failed-precondition"),
        pytest.param(Code.INVALID_ARGUMENT, "GTIDSet Mismatch aa", True, True, id="gtid-mismatch"),
        pytest.param(Code.UNAVAILABLE, "", True, False, id="unavailable"),
        pytest.param(Code.INVALID_ARGUMENT, "final error", False, False, id="invalid-argument"),
        pytest.param(Code.UNKNOWN, TIMEOUT, True, False, id="query-interrupted"),
    ],
)
async def test_retriable_errors_across_cells(
    autojump_clock: trio.abc.Clock, code: Code, message: str, retried: bool, other_tablet: bool
) -> None:
    """Mirrors vtgate's TestVStreamRetriableErrors as vtgate sets it up: REPLICA
    tablets in the gateway's cell (zone1) and another requested cell (zone2), the
    local one failing first. Retriable errors retry on the local tablet; a GTIDSet
    Mismatch rules that tablet out and the other cell's serves; other errors end
    the request with the tablet's error."""
    cluster = Cluster()
    local = cluster.scripted(
        "ks", "-20", [VStreamError(code, message)], [[commit()], HANG], tablet_type=REPLICA
    )
    remote_info = TabletInfo("ks", "-20", "zone2", 200, REPLICA)
    remote = ScriptedTablet(remote_info, [[commit()], HANG])
    cluster.topology.tablets.append(remote_info)
    cluster.tablets[remote_info.alias] = remote
    client = Client()
    req = request(("ks", "-20", "current"), tablet_type=REPLICA, cells="zone1,zone2")
    outcome = await outcome_within(10, req, cluster.gateway(), client)
    if retried:
        assert outcome is None
        assert client.responses == [[binlogdata.VEvent(type=T.COMMIT)]]
        expected = (1, 1) if other_tablet else (2, 0)
        assert (len(local.requests), len(remote.requests)) == expected
    else:
        assert outcome is not None and outcome.code == code
        assert message in outcome.message
        assert client.events == []
        assert (len(local.requests), len(remote.requests)) == (1, 0)
    assert cluster.open_streams() == 0
