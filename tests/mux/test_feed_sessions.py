"""Sessions that share feeds deliver what sessions of their own deliver.

Several clients stream one simulated keyspace through a gateway with a feed
hub while a workload runs; each must replay the source tables exactly and
receive, shard by shard, exactly the transactions after its start position.
The tablets must have served one stream per shard, not one per client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from tests.mux.test_session_e2e import KS, CountingDirectory, Replay, by_shard, vstream_request
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, open_feed_hub, run_vstream
from vsmux.mux.streamer import ShardStreamer
from vsmux.proto import binlogdata
from vsmux.sources._simulated import SimulatedCluster
from vsmux.wire import Frame, decode_event, split_response


def _current() -> binlogdata.VGtid:
    return binlogdata.VGtid(shard_gtids=[binlogdata.ShardGtid(keyspace=KS, gtid="current")])


@dataclass
class NowReplay(Replay):
    """A Replay that can take responses at once (a SendNow), refusing every third offer."""

    offers: int = 0
    written_now: int = 0

    def now(self, bodies: list[bytes], /) -> bool:
        self.offers += 1
        if self.offers % 3 == 0:
            return False  # as a connection whose window is full: the sender awaits it
        self.written_now += 1
        for body in bodies:
            for frame in split_response(body):
                self.apply(decode_event(frame))
        return True


@pytest.mark.parametrize("writes", ["awaited", "now"])
async def test_clients_share_one_stream_per_shard(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch, writes: str
) -> None:
    # Count the batches the streamers' sinks take from the feeds' own tasks.
    taken = 0
    make_sink = ShardStreamer._sink

    def counting_sink(self: ShardStreamer, *args: Any) -> Any:
        take = make_sink(self, *args)
        assert take is not None  # no skew, no chunking: streamers leave sinks

        def counted(batch: list[Frame]) -> bool:
            nonlocal taken
            took = take(batch)
            taken += took
            return took

        return counted

    monkeypatch.setattr(ShardStreamer, "_sink", counting_sink)
    cluster = SimulatedCluster.build({KS: ["-80", "80-"]}, seed=7, ddl_probability=0.0)
    directory = CountingDirectory(cluster)
    settings = GatewaySettings()
    clients = [Replay() if writes == "awaited" else NowReplay() for _ in range(5)]
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        gateway = Gateway(cluster.topology, hub.sources, settings, feeds=hub)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_vstream, vstream_request(_current()), gateway, clients[0])
            await trio.testing.wait_all_tasks_blocked()
            async with trio.open_nursery() as work:
                work.start_soon(lambda: cluster.run_workload(20.0, max_transactions=200))
                for client in clients[1:]:
                    await trio.sleep(1.0)
                    nursery.start_soon(run_vstream, vstream_request(_current()), gateway, client)
            for _ in range(400):
                await trio.sleep(0.5)
                if all(c.caught_up(cluster) for c in clients):
                    break
            nursery.cancel_scope.cancel()
        assert hub.counters.feeds_opened == 2
        assert hub.counters.joins >= 8
    truth = cluster.table_contents(KS)
    # A stream started at "current" begins with the position it starts from
    # (GTID, OTHER): a unit without rows, left out of the comparison.
    first = {shard: txs[1:] for shard, txs in by_shard(clients[0].transactions).items()}
    for client in clients:
        assert client.caught_up(cluster)
        got = by_shard(client.transactions)
        for shard, txs in got.items():
            assert txs[0][2] == ()
            later = txs[1:]
            # Each later client gets exactly what the first one got after its start.
            assert later == first[shard][len(first[shard]) - len(later) :], shard
    assert {t: rows for t, rows in clients[0].tables.items() if rows} == {
        t: rows for t, rows in truth.items() if rows
    }
    assert directory.opened == 2
    assert taken > 100  # most units reached the clients without waking their streamers
    if writes == "now":
        # Written from the feeds' tasks while the senders waited, and in
        # order with what their senders wrote (the comparison above).
        assert all(isinstance(c, NowReplay) and c.written_now > 20 for c in clients)
