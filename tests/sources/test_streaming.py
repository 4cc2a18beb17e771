"""The simulated tablet's VStream, driven directly (no gateway)."""

from __future__ import annotations

import pytest
import trio

from tests.sources.replay import Replay, T, events, merge, request
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata
from vsmux.sources._simulated import SimulatedCluster, Upsert
from vsmux.sources._simulated.gtid import GtidSet
from vsmux.sources._simulated.stream import RESPONSE_TARGET_BYTES


def truth(cluster: SimulatedCluster, tables: set[str]) -> dict[str, dict]:
    contents = cluster.table_contents("commerce")
    return {t: rows for t, rows in contents.items() if t in tables and rows}


async def follow_until(tablet, req, replay: Replay, until) -> None:  # type: ignore[no-untyped-def]
    async with tablet.vstream(req) as stream:
        async for batch in stream:
            replay.apply(batch)
            if until():
                return
            assert replay.heartbeats < 50, "the stream never reached the expected point"


async def test_copy_then_stream_reconstructs_filtered_tables(autojump_clock: object) -> None:
    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=3)
    cluster.apply_random_transactions(300)
    wanted = {"customer", "corder"}
    replays = {s: Replay() for s in ("-80", "80-")}

    async with trio.open_nursery() as nursery:

        async def run(shard: str) -> None:
            tablet = cluster.tablet("commerce", shard)
            req = request(
                "", ("customer", "select * from customer"), "/^cord", "nothing_matches", shard=shard
            )
            await follow_until(
                tablet,
                req,
                replays[shard],
                lambda: (
                    replays[shard].copy_completed == 1
                    and replays[shard].position == tablet.position
                    and written.is_set()
                ),
            )

        written = trio.Event()
        for shard in replays:
            nursery.start_soon(run, shard)
        await trio.sleep(0.5)
        cluster.apply_random_transactions(200)  # while copying / streaming
        written.set()  # a stream that is caught up stops at its next heartbeat

    got = merge(*replays.values())
    assert got == truth(cluster, wanted)
    assert "product" not in got
    for replay in replays.values():
        assert replay.copy_completed == 1
        assert replay.last_pks == {}


async def test_resume_from_every_issued_position_yields_exactly_the_rest(
    autojump_clock: object,
) -> None:
    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=5, ddl_probability=0.05)
    cluster.apply_random_transactions(120)
    tablet = cluster.tablet("commerce", "80-")
    log = tablet.log
    origin = str(GtidSet.single(log.uuid, 0))
    full = Replay()
    await follow_until(
        tablet, request(origin, shard="80-"), full, lambda: full.position == tablet.position
    )
    assert full.gtids == [log.position(n) for n in range(1, log.last_seqno + 1)]

    def rows_and_gtids(replay: Replay) -> list[tuple[str, bytes]]:
        out = []
        for tx in replay.transactions:
            for ev in tx:
                if ev.type in (T.ROW, T.GTID, T.DDL):
                    ev.current_time = 0
                    out.append((ev.type.name, bytes(ev)))
        return out

    expected_all = rows_and_gtids(full)
    for n in range(0, log.last_seqno + 1, 7):
        resumed = Replay(strict=False)
        position = log.position(n)
        req = request(position, shard="80-")
        if n == log.last_seqno:
            continue
        await follow_until(tablet, req, resumed, lambda r=resumed: r.position == tablet.position)
        tail = rows_and_gtids(resumed)
        assert tail == expected_all[len(expected_all) - len(tail) :]
        assert resumed.gtids == full.gtids[n:]


async def test_current_sends_gtid_and_other_then_heartbeats(autojump_clock: object) -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    cluster.apply_random_transactions(3)
    tablet = cluster.tablet("commerce", "0")
    start = trio.current_time()
    seen: list[tuple[float, list[binlogdata.VEvent]]] = []
    async with tablet.vstream(request("current", shard="0")) as stream:
        async for batch in stream:
            seen.append((trio.current_time() - start, events(batch)))
            if len(seen) == 3:
                break
    (t0, first), (t1, second), (t2, third) = seen
    assert t0 == 0 and [e.type for e in first] == [T.GTID, T.OTHER]
    assert first[0].gtid == tablet.position
    assert t1 == pytest.approx(0.9) and [e.type for e in second] == [T.HEARTBEAT]
    assert t2 == pytest.approx(1.8) and [e.type for e in third] == [T.HEARTBEAT]
    assert second[0].keyspace == "commerce" and second[0].shard == "0"
    assert second[0].current_time // 10**9 == second[0].timestamp


async def test_commit_wakes_a_waiting_stream_at_once(autojump_clock: object) -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    tablet = cluster.tablet("commerce", "0")
    got: list[list[binlogdata.VEvent]] = []
    async with tablet.vstream(request("current", shard="0")) as stream:
        iterator = aiter(stream)
        await anext(iterator)
        await trio.sleep(0.5)
        cluster.execute(
            "commerce",
            Upsert(
                "customer", {"customer_id": b"7", "email": b"", "created": b"2024-01-01 00:00:00"}
            ),
        )
        start = trio.current_time()
        got.append(events(await anext(iterator)))
        assert trio.current_time() == start
    kinds = [e.type for e in got[0]]
    assert kinds == [T.BEGIN, T.FIELD, T.ROW, T.GTID, T.COMMIT]
    row = got[0][2].row_event
    assert row is not None and row.table_name == "customer"
    assert row.row_changes[0].after is not None
    assert row.row_changes[0].after.lengths == [1, 0, 19]


@pytest.mark.parametrize(
    "position",
    [
        "MySQL56/11111111-2222-3333-4444-555555555555:1-3",
        "{own}:1-999",
        "{own}:1-2:5-6",
    ],
)
async def test_unissued_position_is_gtidset_mismatch(position: str) -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    cluster.apply_random_transactions(10)
    tablet = cluster.tablet("commerce", "0")
    position = position.replace("{own}", f"MySQL56/{tablet.log.uuid}")
    with pytest.raises(VStreamError) as info:
        async with tablet.vstream(request(position, shard="0")) as stream:
            async for _ in stream:
                pass
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "GTIDSet Mismatch" in info.value.message
    assert info.value.message.startswith(f"{tablet.alias}: ")


async def test_unsupported_filter_and_wrong_target_are_clear_errors() -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    tablet = cluster.tablet("commerce", "0")
    with pytest.raises(VStreamError) as info:
        async with tablet.vstream(
            request("current", ("corder", "select id from corder"), shard="0")
        ) as s:
            async for _ in s:
                pass
    assert info.value.code == Code.INVALID_ARGUMENT and "not supported" in info.value.message
    with pytest.raises(VStreamError) as info:
        async with tablet.vstream(request("current", shard="-80")) as s:
            async for _ in s:
                pass
    assert info.value.code == Code.FAILED_PRECONDITION and "commerce/0" in info.value.message


async def test_large_transaction_is_split_over_responses(autojump_clock: object) -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    tablet = cluster.tablet("commerce", "0")
    statements = [
        Upsert(
            "corder",
            {"order_id": str(i).encode(), "customer_id": b"1", "sku": bytes(100), "price": None},
        )
        for i in range(1, 6001)
    ]
    async with tablet.vstream(request("current", shard="0")) as stream:
        iterator = aiter(stream)
        await anext(iterator)
        cluster.execute("commerce", *statements)
        replay = Replay()
        sizes = []
        while replay.position != tablet.position:
            batch = await anext(iterator)
            sizes.append(sum(len(f.raw) for f in batch))
            replay.apply(batch)
    assert len(sizes) >= 3
    assert max(sizes) < RESPONSE_TARGET_BYTES + 16 * 1024
    assert len(replay.transactions) == 1
    assert len(replay.tables["corder"]) == 6000


async def test_ddl_resends_field_with_new_column_type(autojump_clock: object) -> None:
    from vsmux.sources._simulated import Alter

    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    tablet = cluster.tablet("commerce", "0")
    row = {"customer_id": b"1", "email": b"a@b", "created": b"2024-01-01 00:00:00"}
    cluster.execute("commerce", Upsert("customer", row))
    cluster.execute("commerce", Alter("customer", "email", 200))
    cluster.execute("commerce", Upsert("customer", {**row, "email": None}))
    replay = Replay()
    await follow_until(
        tablet,
        request(str(GtidSet.single(tablet.log.uuid, 0)), shard="0"),
        replay,
        lambda: replay.position == tablet.position,
    )
    kinds = [[e.type for e in tx] for tx in replay.transactions]
    assert kinds == [
        [T.BEGIN, T.FIELD, T.ROW, T.GTID, T.COMMIT],
        [T.DDL],  # preceded by its GTID, outside any transaction
        [T.BEGIN, T.FIELD, T.ROW, T.GTID, T.COMMIT],
    ]
    assert replay.gtids == [tablet.log.position(n) for n in (1, 2, 3)]
    field = replay.transactions[2][1].field_event
    assert field is not None
    email = field.fields[1]
    assert (email.column_type, email.column_length) == ("varchar(200)", 800)
    assert replay.transactions[1][0].statement == "alter table customer modify email varchar(200)"
    assert replay.tables["customer"][(b"1",)]["email"] is None


async def test_purged_binlog_is_errno_1236_and_recent_positions_still_work(
    autojump_clock: object,
) -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["0"]}, seed=8, retention_bytes=30_000, large_probability=0
    )
    cluster.apply_random_transactions(400)
    tablet = cluster.tablet("commerce", "0")
    log = tablet.log
    assert log.first_streamable > 1
    with pytest.raises(VStreamError) as info:
        async with tablet.vstream(request(log.position(1), shard="0")) as stream:
            async for _ in stream:
                pass
    assert info.value.code == Code.UNKNOWN and "errno 1236" in info.value.message
    start = log.first_streamable - 1
    replay = Replay(strict=False)
    await follow_until(
        tablet,
        request(log.position(start), shard="0"),
        replay,
        lambda: replay.position == tablet.position,
    )
    assert replay.gtids == [log.position(n) for n in range(start + 1, log.last_seqno + 1)]
