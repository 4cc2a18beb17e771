"""Resharding journals and copy resumption on simulated tablets."""

from __future__ import annotations

from collections.abc import Callable

import trio

from tests.sources.replay import Replay, request
from vsmux.proto import binlogdata
from vsmux.sources._simulated import SimulatedCluster, SimulatedTablet, Upsert


async def follow(
    tablet: SimulatedTablet,
    req: binlogdata.VStreamRequest,
    replay: Replay,
    until: Callable[[], bool] | None = None,
) -> bool:
    """Stream into ``replay``; True if the tablet ended the stream itself."""
    async with tablet.vstream(req) as stream:
        async for batch in stream:
            if replay.apply(batch, until):
                return False
            assert replay.heartbeats < 50, "the stream never reached the expected point"
    return True


def shared(tables: dict, columns: dict) -> Replay:  # type: ignore[type-arg]
    return Replay(tables=tables, columns=columns)


def caught_up(replay: Replay, tablet: SimulatedTablet) -> Callable[[], bool]:
    return lambda: replay.position == tablet.position


async def _split_or_merge(old: list[str], new: list[str], seed: int) -> None:
    cluster = SimulatedCluster.build({"commerce": old}, seed=seed)
    cluster.apply_random_transactions(150)
    tables: dict = {}  # type: ignore[type-arg]
    columns: dict = {}  # type: ignore[type-arg]
    positions = {}
    for shard in old:
        tablet = cluster.tablet("commerce", shard)
        replay = shared(tables, columns)
        req = request("", shard=shard)
        await follow(
            tablet,
            req,
            replay,
            lambda r=replay, t=tablet: r.copy_completed == 1 and r.position == t.position,
        )
        positions[shard] = replay.position
    cluster.apply_random_transactions(80)
    journal = cluster.reshard("commerce", new)
    cluster.apply_random_transactions(120)  # lands on the new shards only
    removed = [s for s in old if s not in new]
    journals = []
    for shard in old:
        tablet = cluster.tablet("commerce", shard)
        replay = shared(tables, columns)
        ended = await follow(
            tablet,
            request(positions[shard], shard=shard),
            replay,
            None if shard in removed else caught_up(replay, tablet),
        )
        assert ended == (shard in removed)
        journals += replay.journals
    assert len(journals) == len(removed)
    for got in journals:
        assert got.migration_type == binlogdata.MigrationType.SHARDS
        assert [p.shard for p in got.participants] == removed
        assert got.shard_gtids == journal.shard_gtids
        assert got.local_position
    assert [g.shard for g in journal.shard_gtids] == [s for s in new if s not in old]
    assert cluster.topology.serving_shards("commerce") == new
    for sg in journal.shard_gtids:
        tablet = cluster.source_for(cluster.topology.tablets_for("commerce", sg.shard)[0])
        replay = shared(tables, columns)
        await follow(tablet, request(sg.gtid, shard=sg.shard), replay, caught_up(replay, tablet))
    truth = {t: rows for t, rows in cluster.table_contents("commerce").items() if rows}
    assert {t: rows for t, rows in tables.items() if rows} == truth


async def test_split_journals_continue_without_loss_or_duplicates(autojump_clock: object) -> None:
    await _split_or_merge(["-80", "80-"], ["-40", "40-80", "80-"], seed=11)


async def test_merge_journals_on_every_old_shard(autojump_clock: object) -> None:
    await _split_or_merge(["-80", "80-"], ["0"], seed=12)


async def test_resumed_copy_is_exact(autojump_clock: object) -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=4)
    for first in range(1, 2600, 100):
        cluster.execute(
            "commerce",
            *(
                Upsert(
                    "customer",
                    {
                        "customer_id": str(i).encode(),
                        "email": b"x",
                        "created": b"2024-01-01 00:00:00",
                    },
                )
                for i in range(first, first + 100)
            ),
        )
    cluster.apply_random_transactions(50)
    tablet = cluster.tablet("commerce", "0")
    replay = Replay()

    def mid_customer_copy() -> bool:
        lastpk = replay.last_pks.get("customer")
        return lastpk is not None and lastpk.lastpk is not None

    await follow(tablet, request("", shard="0"), replay, mid_customer_copy)
    saved_position, saved = replay.position, list(replay.last_pks.values())
    assert {t.table_name for t in saved} == {"customer", "product"}  # corder is done
    cluster.apply_random_transactions(300)  # touches rows on both sides of the lastpk
    await follow(
        tablet,
        request(saved_position, shard="0", last_pks=saved),
        replay,
        lambda: replay.copy_completed == 1 and replay.position == tablet.position,
    )
    assert replay.last_pks == {}
    truth = {t: rows for t, rows in cluster.table_contents("commerce").items() if rows}
    assert {t: rows for t, rows in replay.tables.items() if rows} == truth


async def test_idle_stream_gets_journal_and_ends(autojump_clock: object) -> None:
    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=2)
    tablet = cluster.tablet("commerce", "-80")
    replay = Replay(strict=False)
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def watch() -> None:
            assert await follow(tablet, request("current"), replay)
            done.set()

        nursery.start_soon(watch)
        await trio.sleep(2)  # the stream is idle, sending heartbeats
        cluster.reshard("commerce", ["-40", "40-80", "80-"])
        await done.wait()
    assert len(replay.journals) == 1
    assert replay.heartbeats == 2
    assert trio.current_time() == 2
