"""Streams that share feeds meet on one replica tablet, and move together.

:class:`~vsmux.mux.affinity.TabletAffinity` remembers the tablet each
(keyspace, shard, tablet type) last went to and holds a lock around picks.
With it, pickers that each shuffle the shard's replicas all choose the same
one; after that tablet fails, the first retry's choice becomes everyone's,
so a shared replica feed's consumers land on one new feed, not on several.
"""

from __future__ import annotations

import random

import trio
import trio.testing

from tests.mux.test_session_e2e import CountingDirectory, Replay, by_shard
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, open_feed_hub, run_vstream
from vsmux.mux.affinity import TabletAffinity
from vsmux.mux.picking_wait import TabletPicker
from vsmux.proto import binlogdata, topodata, vtgate
from vsmux.sources._simulated import SimulatedCluster
from vsmux.topology import TabletInfo

KS = "commerce"
REPLICA = topodata.TabletType.REPLICA
RDONLY = topodata.TabletType.RDONLY
# Three replicas per shard: a chance agreement of eight shuffling pickers is 3 * (1/3)**8.
TYPES = ("primary", "replica", "replica", "replica")


# -- the affinity object ------------------------------------------------------------------


def test_the_last_pick_is_preferred_per_keyspace_shard_and_type() -> None:
    affinity = TabletAffinity()
    assert affinity.preferred(KS, "-80", REPLICA) is None
    affinity.picked(KS, "-80", REPLICA, "zone1-0000000101")
    assert affinity.preferred(KS, "-80", REPLICA) == "zone1-0000000101"
    # The enum and its number are one tablet type.
    assert affinity.preferred(KS, "-80", int(REPLICA)) == "zone1-0000000101"
    # Another shard, type or keyspace has a choice of its own.
    assert affinity.preferred(KS, "80-", REPLICA) is None
    assert affinity.preferred(KS, "-80", RDONLY) is None
    assert affinity.preferred("other", "-80", REPLICA) is None
    # A later pick replaces the earlier one.
    affinity.picked(KS, "-80", int(REPLICA), "zone1-0000000102")
    assert affinity.preferred(KS, "-80", REPLICA) == "zone1-0000000102"


def test_one_lock_per_keyspace_shard_and_type() -> None:
    affinity = TabletAffinity()
    lock = affinity.lock(KS, "-80", REPLICA)
    assert isinstance(lock, trio.Lock)
    assert affinity.lock(KS, "-80", int(REPLICA)) is lock
    assert affinity.lock(KS, "80-", REPLICA) is not lock
    assert affinity.lock(KS, "-80", RDONLY) is not lock


async def test_picks_of_a_shard_wait_for_each_other(autojump_clock: trio.abc.Clock) -> None:
    affinity = TabletAffinity()
    order: list[str] = []

    async def pick(name: str, hold: float) -> None:
        async with affinity.lock(KS, "-80", REPLICA):
            order.append(f"{name} in")
            await trio.sleep(hold)
            order.append(f"{name} out")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pick, "a", 0.05)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(pick, "b", 0.0)
        # Another shard's pick does not wait.
        async with affinity.lock(KS, "80-", REPLICA):
            order.append("other shard")
    assert order == ["a in", "other shard", "a out", "b in", "b out"]


# -- pickers ------------------------------------------------------------------------------


def _pickers(
    cluster: SimulatedCluster, affinity: TabletAffinity | None, n: int
) -> list[TabletPicker]:
    return [
        TabletPicker(
            cluster.topology,
            cluster,
            GatewaySettings(),
            tablet_type=REPLICA,
            cells=["zone1"],
            cell_preference="preferlocalwithalias",
            rng=random.Random(seed),
            affinity=affinity,
        )
        for seed in range(n)
    ]


async def _pick_all(pickers: list[TabletPicker], shard: str) -> list[str]:
    picked: list[str] = [""] * len(pickers)

    async def pick(index: int) -> None:
        picked[index] = (await pickers[index].pick(KS, shard)).alias

    async with trio.open_nursery() as nursery:
        for index in range(len(pickers)):
            nursery.start_soon(pick, index)
    return picked


def _replicas(cluster: SimulatedCluster, shard: str) -> list[TabletInfo]:
    return [t for t in cluster.topology.tablets_for(KS, shard) if t.tablet_type == REPLICA]


async def test_pickers_sharing_an_affinity_agree_and_move_together(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = SimulatedCluster.build({KS: ["-80", "80-"]}, seed=5, tablet_types=TYPES)
    assert len(_replicas(cluster, "-80")) == 3
    # Without it, the shuffles spread eight pickers over the replicas.
    assert len(set(await _pick_all(_pickers(cluster, None, 8), "-80"))) > 1
    affinity = TabletAffinity()
    picked = await _pick_all(_pickers(cluster, affinity, 8), "-80")
    assert len(set(picked)) == 1
    first = picked[0]
    assert affinity.preferred(KS, "-80", REPLICA) == first
    # The tablet dies: the next picks all go to one other replica.
    down = next(t for t in _replicas(cluster, "-80") if t.alias == first)
    cluster.source_for(down).health.set_down(True)
    picked = await _pick_all(_pickers(cluster, affinity, 8), "-80")
    assert len(set(picked)) == 1 and picked[0] != first
    assert affinity.preferred(KS, "-80", REPLICA) == picked[0]


# -- shared replica feeds -------------------------------------------------------------------


def _replica_request() -> vtgate.VStreamRequest:
    return vtgate.VStreamRequest(
        tablet_type=REPLICA,
        vgtid=binlogdata.VGtid(shard_gtids=[binlogdata.ShardGtid(keyspace=KS, gtid="current")]),
    )


async def test_a_failed_replica_feeds_consumers_all_move_to_one_next_tablet(
    autojump_clock: trio.abc.Clock,
) -> None:
    shards = ["-80", "80-"]
    cluster = SimulatedCluster.build({KS: shards}, seed=5, tablet_types=TYPES, ddl_probability=0.0)
    directory = CountingDirectory(cluster)
    settings = GatewaySettings(retry_backoff_initial=0.01, retry_backoff_max=0.05)
    clients = [Replay() for _ in range(8)]
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        gateway = Gateway(cluster.topology, hub.sources, settings, feeds=hub)
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(run_vstream, _replica_request(), gateway, client)
            await cluster.run_workload(20.0, keyspace=KS, max_transactions=20)
            await trio.sleep(2)
            # One feed per shard, on one replica, read by every client.
            before = {s.shard: s for s in hub.stats()}
            assert sorted(before) == shards
            assert [s.consumers for s in before.values()] == [len(clients)] * len(shards)
            assert all(s.tablet_type == "REPLICA" for s in before.values())
            assert directory.opened == len(shards)
            # The tablet under the first shard's feed dies.
            dead = before["-80"].tablet
            tablet = next(t for t in _replicas(cluster, "-80") if t.alias == dead)
            cluster.source_for(tablet).health.set_down(True)
            await trio.sleep(5)
            await cluster.run_workload(20.0, keyspace=KS, max_transactions=20)
            await trio.sleep(2)
            stats = hub.stats()
            # One feed per shard still (the dead tablet's has ended).
            assert sorted(s.shard for s in stats) == shards
            after = {s.shard: s for s in stats}
            # Every consumer of the dead tablet's feed is on one new feed, on
            # one other replica; the other shard's feed did not move.
            assert after["-80"].tablet != dead
            assert after["-80"].consumers == len(clients)
            assert after["80-"].tablet == before["80-"].tablet
            assert after["80-"].consumers == len(clients)
            assert affinity_of(hub.affinity, "-80") == after["-80"].tablet
            assert hub.counters.feeds_opened == len(shards) + 1
            assert all(client.caught_up(cluster) for client in clients)
            nursery.cancel_scope.cancel()
    # Nothing lost or repeated: per shard, every GTID from the start once, in
    # order, and the same transactions for every client.
    assert len(clients[0].transactions) >= 40
    for client in clients:
        for shard, transactions in by_shard(client.transactions).items():
            seqnos = [_seqno(gtid) for _shard, gtid, _rows in transactions]
            assert seqnos == list(range(seqnos[0], seqnos[0] + len(seqnos))), shard
        assert by_shard(client.transactions) == by_shard(clients[0].transactions)


def _seqno(gtid: str) -> int:
    """The last transaction number of a one-server position (0 for an empty one)."""
    return int(gtid.rsplit(":", 1)[1].rsplit("-", 1)[-1]) if ":" in gtid else 0


def affinity_of(affinity: TabletAffinity, shard: str) -> str | None:
    return affinity.preferred(KS, shard, REPLICA)
