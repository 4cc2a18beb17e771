"""Session streaming: events, cumulative VGTIDs, chunks, heartbeats-only batches."""

from __future__ import annotations

import trio

from tests.mux.scripted import (
    HANG,
    Client,
    Cluster,
    T,
    begin,
    commit,
    ddl,
    ev,
    field,
    gtid,
    heartbeat,
    request,
    row,
)
from vsmux.mux import run_vstream
from vsmux.proto import binlogdata


def sg(ks: str, shard: str, g: str) -> binlogdata.ShardGtid:
    return binlogdata.ShardGtid(keyspace=ks, shard=shard, gtid=g)


async def run_until(
    client: Client, cluster: Cluster, req: object, count: int, **settings: object
) -> None:
    """Run the request until ``count`` events arrived, then cancel it."""
    gateway = cluster.gateway(**settings)
    async with trio.open_nursery() as nursery:

        async def go() -> None:
            await run_vstream(req, gateway, client)

        nursery.start_soon(go)
        with trio.fail_after(60):
            while len(client.events) < count:
                await client.received.wait()
        nursery.cancel_scope.cancel()
    assert cluster.open_streams() == 0


async def test_events_get_keyspace_prefix_and_vgtid(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted(
        "ks", "-20", [[begin(), field("t1"), row("t1"), gtid("gtid01"), commit()], HANG]
    )
    client = Client()
    await run_until(client, cluster, request(("ks", "-20", "current")), 5)
    events = client.events
    assert [e.type for e in events] == [T.BEGIN, T.FIELD, T.ROW, T.VGTID, T.COMMIT]
    assert events[1].field_event.table_name == "ks.t1"
    assert events[2].row_event.table_name == "ks.t1"
    assert events[3].vgtid == binlogdata.VGtid(shard_gtids=[sg("ks", "-20", "gtid01")])
    assert len(client.responses) == 1  # VGTID and COMMIT in the same response


async def test_exclude_keyspace_from_table_name(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[begin(), field("t1"), row("t1"), commit()], HANG])
    client = Client()
    req = request(("ks", "-20", "current"), exclude_keyspace_from_table_name=True)
    await run_until(client, cluster, req, 4)
    assert client.events[1].field_event.table_name == "t1"
    assert client.events[2].row_event.table_name == "t1"


async def test_multi_shard_vgtid_is_cumulative(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[gtid("a1"), commit()], 1.0, [gtid("a2"), commit()], HANG])
    cluster.scripted("ks", "20-40", [0.5, [gtid("b1"), commit()], HANG])
    client = Client()
    await run_until(
        client, cluster, request(("ks", "-20", "MySQL56/a0"), ("ks", "20-40", "MySQL56/b0")), 6
    )
    vgtids = [e.vgtid for e in client.events if e.type == T.VGTID]
    assert vgtids == [
        binlogdata.VGtid(shard_gtids=[sg("ks", "-20", "a1"), sg("ks", "20-40", "MySQL56/b0")]),
        binlogdata.VGtid(shard_gtids=[sg("ks", "-20", "a1"), sg("ks", "20-40", "b1")]),
        binlogdata.VGtid(shard_gtids=[sg("ks", "-20", "a2"), sg("ks", "20-40", "b1")]),
    ]


async def test_heartbeat_only_batches_produce_nothing(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[heartbeat()], [heartbeat(), heartbeat()], 1.0, [ddl()], HANG])
    client = Client()
    await run_until(client, cluster, request(("ks", "-20", "current")), 1)
    assert client.types() == [T.DDL]
    assert len(client.responses) == 1


async def test_transaction_split_over_batches_is_contiguous(autojump_clock: trio.abc.Clock) -> None:
    # 100 DDLs on one shard while the other sends one transaction in 100 messages.
    cluster = Cluster()
    ddls: list[object] = []
    for i in range(100):
        ddls += [[gtid(f"d{i}"), ddl()], 0.0]
    cluster.scripted("ks", "-20", [*ddls, HANG])
    big: list[object] = [[begin()]]
    for i in range(100):
        big += [[row("t1", str(i).encode())], 0.0]
    big += [[gtid("t1"), commit()], HANG]
    cluster.scripted("ks", "20-40", big)
    client = Client()
    await run_until(
        client, cluster, request(("ks", "-20", "current"), ("ks", "20-40", "current")), 200 + 103
    )
    types = client.types()
    start = types.index(T.BEGIN)
    assert types[start : start + 103] == [T.BEGIN] + [T.ROW] * 100 + [T.VGTID, T.COMMIT]
    assert types.count(T.DDL) == 100


async def test_chunked_transaction_is_not_interleaved(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    ddls: list[object] = []
    for i in range(100):
        ddls += [[gtid(f"d{i}"), ddl()], 0.0]
    cluster.scripted("ks", "-20", [*ddls, HANG])
    big: list[object] = [[begin()]]
    for _ in range(100):
        big += [[row("t1", b"v" * 50)], 0.0]
    big += [[gtid("t1"), commit()], HANG]
    cluster.scripted("ks", "20-40", big)
    client = Client()
    gateway_flags = {"transaction_chunk_size": 500}
    req = request(("ks", "-20", "current"), ("ks", "20-40", "current"), **gateway_flags)
    gateway = cluster.gateway()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, req, gateway, client)
        while len(client.events) < 303:
            await client.received.wait()
        nursery.cancel_scope.cancel()
    types = client.types()
    start = types.index(T.BEGIN)
    assert types[start : start + 103] == [T.BEGIN] + [T.ROW] * 100 + [T.VGTID, T.COMMIT]
    # The transaction went out in several responses, not one.
    assert len(client.responses) > 100 + 2
    assert gateway.metrics.total("VStreamsTransactionsChunked") == 1
    assert gateway.metrics.total("VStreamsEventsStreamed") == 303
    assert cluster.open_streams() == 0


async def test_large_unit_is_split_over_responses(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    rows = [row("t1", b"x" * 1000) for _ in range(50)]
    cluster.scripted("ks", "-20", [[begin(), *rows, gtid("g"), commit()], HANG])
    client = Client()
    await run_until(
        client, cluster, request(("ks", "-20", "current")), 53, max_response_bytes=10_000
    )
    assert max(client.sizes) <= 10_000
    assert len(client.responses) >= 5
    assert client.types() == [T.BEGIN] + [T.ROW] * 50 + [T.VGTID, T.COMMIT]


async def test_other_event_types_pass_through(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[ev(T.VERSION), begin(), ev(T.SAVEPOINT), ev(T.ROLLBACK)], HANG])
    client = Client()
    await run_until(client, cluster, request(("ks", "-20", "current")), 4)
    assert client.types() == [T.VERSION, T.BEGIN, T.SAVEPOINT, T.ROLLBACK]
