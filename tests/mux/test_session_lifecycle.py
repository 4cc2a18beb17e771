"""Request lifetime: first error wins, cancellation, copy phase, counters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from tests.mux.scripted import (
    HANG,
    Client,
    Cluster,
    T,
    begin,
    commit,
    ev,
    field,
    gtid,
    request,
    row,
)
from vsmux.errors import Code, VStreamError
from vsmux.mux import run_vstream
from vsmux.proto import binlogdata, query


async def test_first_error_wins(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-40", [2.0, VStreamError(Code.INTERNAL, "second")])
    cluster.scripted("ks", "40-80", [1.0, VStreamError(Code.PERMISSION_DENIED, "first")])
    cluster.scripted("ks", "80-", [1.0, VStreamError(Code.PERMISSION_DENIED, "third")])
    gateway = cluster.gateway()
    req = request(("ks", "-40", "current"), ("ks", "40-80", "current"), ("ks", "80-", "current"))
    with pytest.raises(VStreamError) as info:
        await run_vstream(req, gateway, Client())
    assert info.value.code == Code.PERMISSION_DENIED
    assert info.value.message in ("first", "third")
    assert trio.current_time() == 1.0
    assert cluster.open_streams() == 0
    assert gateway.metrics.total("VStreamsCount") == 0
    assert gateway.metrics.total("VStreamsCreated") == 3


async def test_resolution_errors_reach_the_caller() -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-80", [HANG])
    with pytest.raises(VStreamError) as info:
        await run_vstream(request(("nope", "-80", "current")), cluster.gateway(), Client())
    assert info.value.message.startswith("failed to resolve vstream parameters: ")


async def test_client_cancel_stops_every_task(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    for shard in ("-40", "40-80", "80-"):
        cluster.scripted("ks", shard, [[gtid("MySQL56/a:1"), commit()], HANG])
    gateway = cluster.gateway()
    client = Client()
    async with trio.open_nursery() as nursery:
        req = request(
            ("ks", "-40", "current"), ("ks", "40-80", "current"), ("ks", "80-", "current")
        )
        nursery.start_soon(run_vstream, req, gateway, client)
        await trio.sleep(5)
        assert cluster.open_streams() == 6  # a vstream and a health watch per shard
        assert gateway.metrics.total("VStreamsCount") == 3
        nursery.cancel_scope.cancel()
    assert trio.current_time() == 5.0
    assert cluster.open_streams() == 0
    assert gateway.metrics.total("VStreamsCount") == 0
    assert gateway.metrics.total("VStreamsEndedWithErrors") == 0
    assert len(client.events) == 6


async def test_cancel_during_chunked_send_race(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    pieces = [[row("t1", b"x" * 200)] for _ in range(20)]
    cluster.scripted("ks", "-80", [[begin()], *pieces, HANG])
    cluster.scripted("ks", "80-", [[gtid("MySQL56/b:1"), commit()], HANG])
    client = Client()
    client.block = trio.Event()  # the client stops reading: the sender blocks mid-chunk
    gateway = cluster.gateway(unit_queue_size=1)
    req = request(("ks", "-80", "current"), ("ks", "80-", "current"), transaction_chunk_size=100)
    with trio.move_on_after(3.0) as scope:
        await run_vstream(req, gateway, client)
    assert scope.cancelled_caught
    assert trio.current_time() == 3.0
    assert cluster.open_streams() == 0
    assert gateway.metrics.total("VStreamsCount") == 0


async def test_slow_client_backpressures_the_sources(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    transactions = [[begin(), row(), commit()] for _ in range(1000)]
    tablet = cluster.log("ks", "-80", transactions)
    client = Client()
    client.block = trio.Event()
    gateway = cluster.gateway(unit_queue_size=4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, request(("ks", "-80", "current")), gateway, client)
        await trio.sleep(10)
        # One parcel in the sender, four queued, one in the streamer's hands.
        assert tablet.open_streams == 1
        assert 5 <= tablet.batches_sent <= 6  # of 1000
        nursery.cancel_scope.cancel()
    assert client.events == []


async def test_unhealthy_tablet_is_abandoned_and_stream_restarts(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    tablet = cluster.scripted(
        "ks",
        "-80",
        [[gtid("MySQL56/a:1-1"), commit()], HANG],
        [[gtid("MySQL56/a:1-2"), commit()], HANG],
    )
    reports = 0

    @asynccontextmanager
    async def flaky_health() -> AsyncIterator[AsyncIterator[query.StreamHealthResponse]]:
        nonlocal reports
        reports += 1
        first = reports == 1

        async def gen() -> AsyncIterator[query.StreamHealthResponse]:
            from tests.mux.scripted import healthy

            yield healthy(tablet.tablet)
            if first:
                await trio.sleep(2.0)
                bad = healthy(tablet.tablet)
                bad.realtime_stats = query.RealtimeStats(health_error="mysqld is down")
                yield bad
            await trio.sleep_forever()

        yield gen()

    tablet.stream_health = flaky_health
    client = Client()
    with trio.move_on_after(10):
        await run_vstream(request(("ks", "-80", "current")), cluster.gateway(), client)
    assert [r.position for r in tablet.requests] == ["current", "MySQL56/a:1-1"]
    assert client.types() == [T.VGTID, T.COMMIT, T.VGTID, T.COMMIT]


def lastpk(table: str, pk: bytes, completed: bool = False) -> object:
    return ev(
        T.LASTPK,
        last_p_k_event=binlogdata.LastPkEvent(
            table_last_p_k=binlogdata.TableLastPk(
                table_name=table,
                lastpk=query.QueryResult(rows=[query.Row(lengths=[len(pk)], values=pk)]),
            ),
            completed=completed,
        ),
    )


async def test_copy_completed_per_shard_and_final(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    for shard, delay in (("-80", 0.0), ("80-", 1.0)):
        cluster.scripted(
            "ks",
            shard,
            [
                delay,
                [begin(), field(), row(), lastpk("t1", b"1"), commit()],
                [begin(), lastpk("t1", b"1", completed=True), commit()],
                [ev(T.COPY_COMPLETED, keyspace="ks", shard=shard)],
                HANG,
            ],
        )
    client = Client()
    with trio.move_on_after(10):
        await run_vstream(
            request(("ks", "-80", ""), ("ks", "80-", "")),
            cluster.gateway(),
            client,
        )
    copies = [(e.keyspace, e.shard) for e in client.events if e.type == T.COPY_COMPLETED]
    assert copies == [("ks", "-80"), ("ks", "80-"), ("", "")]
    assert client.events[-1].type == T.COPY_COMPLETED and client.events[-1].keyspace == ""
    assert T.LASTPK not in client.types()
    last_vgtid = [e.vgtid for e in client.events if e.type == T.VGTID][-1]
    assert last_vgtid is not None
    assert [sg.table_p_ks for sg in last_vgtid.shard_gtids] == [[], []]


async def test_copy_resumes_from_table_p_ks(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    tablet = cluster.scripted(
        "ks",
        "-80",
        [[begin(), row(), lastpk("t1", b"7"), commit()], VStreamError(Code.UNAVAILABLE, "x")],
        [HANG],
    )
    with trio.move_on_after(10):
        await run_vstream(request(("ks", "-80", "")), cluster.gateway(), Client())
    assert len(tablet.requests) == 2
    resumed = tablet.requests[1]
    assert resumed.position == ""
    assert [pk.table_name for pk in resumed.table_last_p_ks] == ["t1"]
    assert resumed.table_last_p_ks[0].lastpk.rows[0].values == b"7"


async def test_request_to_the_tablet(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    tablet = cluster.scripted("ks", "-80", [HANG])
    req = request(("ks", "-80", "current"), stream_keyspace_heartbeats=True, tables_to_copy=["t1"])
    with trio.move_on_after(1):
        await run_vstream(req, cluster.gateway(), Client())
    (sent,) = tablet.requests
    assert sent.target is not None
    assert (sent.target.keyspace, sent.target.shard) == ("ks", "-80")
    assert sent.position == "current"
    assert sent.filter is not None and sent.filter.rules[0].match == "/.*"
    assert sent.options is not None
    assert sent.options.internal_tables == ["heartbeat"]
    assert sent.options.tables_to_copy == ["t1"]


async def test_counters(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted(
        "ks", "-80", [[begin(), row(), gtid("MySQL56/a:1"), commit(ts=100, ct=103 * 10**9)], HANG]
    )
    gateway = cluster.gateway()
    with trio.move_on_after(1):
        await run_vstream(request(("ks", "-80", "current")), gateway, Client())
    labels = ("ks", "-80", "PRIMARY")
    m = gateway.metrics
    assert m.get("VStreamsCreated", labels) == 1
    assert m.get("VStreamsCount", labels) == 0
    assert m.get("VStreamsEventsStreamed", labels) == 4
    assert m.get("VStreamsLag", labels) == 3.0
    assert m.get("VStreamsEndedWithErrors", labels) == 0


async def test_malformed_event_fails_with_a_clear_error(autojump_clock: trio.abc.Clock) -> None:
    from vsmux.wire import Frame

    cluster = Cluster()
    bad_row = Frame(int(T.ROW), b"\x08\x0c\x2a\x50\x0a")  # row_event runs past the end
    tablet = cluster.scripted("ks", "-80", [[begin(), bad_row, commit()], HANG])
    with pytest.raises(VStreamError) as info:
        await run_vstream(request(("ks", "-80", "current")), cluster.gateway(), Client())
    assert info.value.code == Code.INTERNAL
    assert f"tablet {tablet.tablet.alias} sent a malformed event for ks/-80" in info.value.message
    assert cluster.open_streams() == 0


async def test_a_bug_in_a_source_becomes_one_internal_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-80", [HANG])
    broken = cluster.scripted("ks", "80-", [HANG])

    @asynccontextmanager
    async def vstream(request: binlogdata.VStreamRequest) -> AsyncIterator[AsyncIterator[list]]:
        raise RuntimeError("source bug")
        yield  # pragma: no cover

    broken.vstream = vstream  # type: ignore[method-assign, assignment]
    with pytest.raises(VStreamError) as info:
        await run_vstream(
            request(("ks", "-80", "current"), ("ks", "80-", "current")), cluster.gateway(), Client()
        )
    assert info.value.code == Code.INTERNAL
    assert info.value.message == "vstream failed unexpectedly: RuntimeError('source bug')"
    assert cluster.open_streams() == 0
