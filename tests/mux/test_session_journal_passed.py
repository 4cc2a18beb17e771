"""A participant whose stream (re)opens at ``current`` only after its journal.

A request resolved just before a reshard may open (or, after a failure
before its first unit, reopen) a source shard's stream at ``current`` after
that shard's journal was written: the stream starts past the journal and
the tablet sends it nothing but heartbeats. The other participants reach the
journal and wait for it. Once one has, a tablet heartbeat on the stream that
has read nothing since it opened says it is past its journal: it counts as
arrived, and the request converges on the new shards. A journal that no
participant reads (a split's, when its one participant started past it)
still waits: the last test marks that limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from tests.mux.test_session_e2e import KS, Replay, by_shard, vstream_request
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, open_feed_hub, run_vstream
from vsmux.proto import binlogdata
from vsmux.sources._simulated import SimulatedCluster

# Long enough that the first retry (between half of it and all of it) comes
# after the reshard at 1 s.
BACKOFF = 4.0


@asynccontextmanager
async def _gateway(
    cluster: SimulatedCluster, settings: GatewaySettings, share: bool
) -> AsyncIterator[Gateway]:
    if not share:
        yield Gateway(cluster.topology, cluster, settings)
        return
    async with open_feed_hub(cluster, cluster.topology, settings) as hub:
        yield Gateway(cluster.topology, hub.sources, settings, feeds=hub)


def _current(*shards: str) -> binlogdata.VGtid:
    return binlogdata.VGtid(
        shard_gtids=[binlogdata.ShardGtid(keyspace=KS, shard=s, gtid="current") for s in shards]
    )


@pytest.mark.parametrize("share", [False, True], ids=["own", "shared"])
async def test_a_participant_reopened_past_its_journal_converges_race(
    autojump_clock: trio.abc.Clock, share: bool
) -> None:
    cluster = SimulatedCluster.build({KS: ["-40", "40-80", "80-"]}, seed=11, ddl_probability=0.0)
    cluster.apply_random_transactions(20, KS)
    # 40-80's first stream fails before its first unit; its retry comes after the reshard.
    cluster.tablet(KS, "40-80").faults.fail_after(0)
    settings = GatewaySettings(
        retry_backoff_initial=BACKOFF,
        retry_backoff_max=BACKOFF,
        # A plain retry after the backoff, not a reconnect through the failover buffer.
        failover_buffer_enabled=False,
    )
    client = Replay()
    async with _gateway(cluster, settings, share) as gateway, trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, vstream_request(_current("-40", "40-80")), gateway, client)
        await trio.sleep(1.0)
        journal = cluster.reshard(KS, ["-80", "80-"])
        start = cluster.shard_log(KS, "-80").last_seqno
        async with trio.open_nursery() as work:
            work.start_soon(lambda: cluster.run_workload(20.0, max_transactions=60))
        merged = cluster.shard_log(KS, "-80")
        expected = [entry.position for entry in merged.entries_after(start)]
        assert expected, "the workload wrote nothing to -80"
        # Without the rule the request waits at the journal for good.
        for _ in range(240):
            if _has(client, "-80", merged.position()):
                break
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert _has(client, "-80", merged.position()), f"no convergence; the client has {client.vgtid}"
    assert [sg.shard for sg in journal.participants] == ["-40", "40-80"]
    assert client.vgtid is not None
    assert [sg.shard for sg in client.vgtid.shard_gtids] == ["-80"]
    # Every transaction of the new shard after the reshard, once, in order.
    assert [gtid for _shard, gtid, _rows in by_shard(client.transactions)["-80"]] == expected


def _has(client: Replay, shard: str, position: str) -> bool:
    vgtid = client.vgtid
    return vgtid is not None and any(
        sg.shard == shard and sg.gtid == position for sg in vgtid.shard_gtids
    )


@pytest.mark.xfail(
    strict=True,
    reason="a journal no participant reads (a split's one participant started past it) "
    "still waits for good: README, Status and limits",
)
async def test_a_split_whose_only_participant_reopened_past_its_journal_race(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = SimulatedCluster.build({KS: ["-80", "80-"]}, seed=11, ddl_probability=0.0)
    cluster.apply_random_transactions(20, KS)
    cluster.tablet(KS, "-80").faults.fail_after(0)
    settings = GatewaySettings(
        retry_backoff_initial=BACKOFF, retry_backoff_max=BACKOFF, failover_buffer_enabled=False
    )
    client = Replay()
    async with _gateway(cluster, settings, False) as gateway, trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, vstream_request(_current("-80")), gateway, client)
        await trio.sleep(1.0)
        cluster.reshard(KS, ["-40", "40-80", "80-"])
        cluster.apply_random_transactions(20, KS)
        await trio.sleep(120)
        nursery.cancel_scope.cancel()
    assert client.vgtid is not None
    assert [sg.shard for sg in client.vgtid.shard_gtids] == ["-40", "40-80"]
