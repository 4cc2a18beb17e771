"""End to end: simulated shards, a random workload, faults and a reshard.

For several seeds: a session streams a simulated keyspace while a random
workload runs, random tablets fail (sometimes inside a transaction) and the
keyspace is resharded at a random moment. The client-side replay of the
stream must reproduce the source tables exactly, and a second session started
from a random delivered VGtid must deliver exactly the transactions that came
after it, shard by shard (none lost, none repeated).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from vsmux.errors import Code
from vsmux.mux import Gateway, run_vstream
from vsmux.mux.shard_source import ShardSource
from vsmux.proto import binlogdata, query, topodata, vtgate
from vsmux.sources._simulated import SimulatedCluster
from vsmux.sources._simulated.rows import decode_row
from vsmux.topology import TabletInfo
from vsmux.wire import Frame, decode_event, split_response

T = binlogdata.VEventType
KS = "commerce"
PRI_KEY = 2  # query.MySqlFlag PRI_KEY_FLAG

Key = tuple[bytes | None, ...]
TxRecord = tuple[str, str, tuple[bytes, ...]]  # shard, gtid, row events


def _values(r: query.Row | None) -> tuple[bytes | None, ...] | None:
    return None if r is None else decode_row(r)


@dataclass
class Replay:
    """A client that applies the stream to its own copy of the tables."""

    tables: dict[str, dict[Key, dict[str, bytes | None]]] = field(default_factory=dict)
    fields: dict[tuple[str, str], list[query.Field]] = field(default_factory=dict)
    vgtid: binlogdata.VGtid | None = None
    vgtids: list[binlogdata.VGtid] = field(default_factory=list)
    transactions: list[TxRecord] = field(default_factory=list)
    _rows: list[bytes] = field(default_factory=list)
    _gtid: tuple[str, str] | None = None
    _in_tx: bool = False

    async def __call__(self, bodies: list[bytes]) -> None:
        for body in bodies:
            for frame in split_response(body):
                self.apply(decode_event(frame))

    def apply(self, event: binlogdata.VEvent) -> None:
        kind = event.type
        if kind == T.BEGIN:
            assert not self._in_tx, "BEGIN inside an open transaction"
            self._in_tx = True
            self._rows = []
            self._gtid = None
        elif kind == T.FIELD:
            fe = event.field_event
            assert fe is not None and fe.table_name.startswith(KS + ".")
            self.fields[(event.shard, fe.table_name)] = list(fe.fields)
        elif kind == T.ROW:
            assert self._in_tx, "ROW outside a transaction"
            self._row(event)
            # Row content only: current_time differs between two streams.
            self._rows.append(bytes(event.row_event))
        elif kind == T.VGTID:
            assert event.vgtid is not None
            self.vgtid = event.vgtid
            gtid = next(sg.gtid for sg in event.vgtid.shard_gtids if sg.shard == event.shard)
            self._gtid = (event.shard, gtid)
        elif kind in (T.COMMIT, T.DDL, T.OTHER):
            assert self._gtid is not None, f"{T(kind).name} without a VGTID before it"
            self.transactions.append((*self._gtid, tuple(self._rows)))
            assert self.vgtid is not None
            self.vgtids.append(self.vgtid)
            self._in_tx = False
            self._rows = []
            self._gtid = None
        assert kind not in (T.GTID, T.LASTPK), "GTID/LASTPK leaked to the client"

    def _row(self, event: binlogdata.VEvent) -> None:
        re_ = event.row_event
        assert re_ is not None
        table = re_.table_name.split(".", 1)[1]
        fields = self.fields[(event.shard, re_.table_name)]
        names = [f.name for f in fields]
        pk = [i for i, f in enumerate(fields) if f.flags & PRI_KEY]
        rows = self.tables.setdefault(table, {})
        for change in re_.row_changes:
            before = _values(change.before)
            after = _values(change.after)
            if before is not None:
                rows.pop(tuple(before[i] for i in pk), None)
            if after is not None:
                rows[tuple(after[i] for i in pk)] = dict(zip(names, after, strict=True))

    def caught_up(self, cluster: SimulatedCluster) -> bool:
        if self.vgtid is None:
            return False
        have = {sg.shard: sg.gtid for sg in self.vgtid.shard_gtids}
        serving = cluster.topology.serving_shards(KS)
        return set(have) == set(serving) and all(
            have[s] == cluster.position(KS, s) for s in serving
        )


class CountingDirectory:
    """The cluster's tablets, counting the vstreams opened on them."""

    def __init__(self, cluster: SimulatedCluster) -> None:
        self.cluster = cluster
        self.opened = 0

    def source_for(self, tablet: TabletInfo) -> ShardSource:
        directory = self
        inner = self.cluster.source_for(tablet)

        class Counted:
            @property
            def tablet(self) -> TabletInfo:
                return inner.tablet

            def vstream(
                self, request: binlogdata.VStreamRequest
            ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
                directory.opened += 1
                return inner.vstream(request)

            def stream_health(
                self,
            ) -> AbstractAsyncContextManager[AsyncIterator[query.StreamHealthResponse]]:
                return inner.stream_health()

        return Counted()


def vstream_request(vgtid: binlogdata.VGtid, skew: bool = False) -> vtgate.VStreamRequest:
    return vtgate.VStreamRequest(
        tablet_type=topodata.TabletType.PRIMARY,
        vgtid=vgtid,
        flags=vtgate.VStreamFlags(minimize_skew=skew, heartbeat_interval=1 if skew else 0),
    )


async def stream_until_caught_up(
    gateway: Gateway, cluster: SimulatedCluster, vgtid: binlogdata.VGtid, client: Replay
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, vstream_request(vgtid), gateway, client)
        for _ in range(2000):  # bounded: 1000 s of mock time
            await trio.sleep(0.5)
            if client.caught_up(cluster):
                break
        nursery.cancel_scope.cancel()


def by_shard(transactions: list[TxRecord]) -> dict[str, list[TxRecord]]:
    out: dict[str, list[TxRecord]] = {}
    for tx in transactions:
        out.setdefault(tx[0], []).append(tx)
    return out


@pytest.mark.parametrize(("seed", "skew"), [(1, False), (2, False), (3, False), (4, True)])
async def test_replay_matches_the_source_under_faults_and_reshard(
    autojump_clock: trio.abc.Clock, seed: int, skew: bool
) -> None:
    rng = random.Random(seed)
    cluster = SimulatedCluster.build({KS: ["-80", "80-"]}, seed=seed, ddl_probability=0.0)
    directory = CountingDirectory(cluster)
    gateway = Gateway(cluster.topology, directory)
    client = Replay()
    start = binlogdata.VGtid(shard_gtids=[binlogdata.ShardGtid(keyspace=KS, gtid="current")])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, vstream_request(start, skew), gateway, client)
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as work:
            work.start_soon(lambda: cluster.run_workload(20.0, max_transactions=300))
            reshard_at = rng.uniform(3.0, 10.0)
            elapsed = 0.0
            for _ in range(3):  # random tablet failures, some inside a transaction
                pause = rng.uniform(0.5, 4.0)
                await trio.sleep(pause)
                elapsed += pause
                shard = rng.choice(cluster.topology.serving_shards(KS))
                cluster.tablet(KS, shard).faults.fail_after(
                    rng.randrange(0, 30), Code.UNAVAILABLE, mid_transaction=rng.random() < 0.5
                )
                if elapsed >= reshard_at and len(cluster.topology.serving_shards(KS)) == 2:
                    cluster.reshard(KS, ["-40", "40-80", "80-"])
            if len(cluster.topology.serving_shards(KS)) == 2:
                await trio.sleep(max(0.0, reshard_at - elapsed))
                cluster.reshard(KS, ["-40", "40-80", "80-"])
        for _ in range(2000):
            await trio.sleep(0.5)
            if client.caught_up(cluster):
                break
        nursery.cancel_scope.cancel()

    assert client.caught_up(cluster)
    assert cluster.topology.serving_shards(KS) == ["-40", "40-80", "80-"]
    # 2 first streams + 3 after the reshard, and at least one retry after a failure.
    assert directory.opened >= 5 + 1
    truth = cluster.table_contents(KS)
    assert {t: rows for t, rows in client.tables.items() if rows} == {
        t: rows for t, rows in truth.items() if rows
    }
    assert len(client.transactions) >= 300
    assert gateway.metrics.total("VStreamsCount") == 0

    # Restart from a random delivered VGtid: exactly the later transactions.
    # ("current" is not a position one can resume from: skip VGtids holding it.)
    resumable = [
        i for i, v in enumerate(client.vgtids) if all(sg.gtid != "current" for sg in v.shard_gtids)
    ]
    index = rng.choice(resumable)
    restart_from = client.vgtids[index]
    second = Replay()
    await stream_until_caught_up(Gateway(cluster.topology, cluster), cluster, restart_from, second)
    assert second.caught_up(cluster)
    # The VGtid after transaction ``index`` covers exactly the transactions up to it.
    expected = by_shard(client.transactions[index + 1 :])
    got = by_shard(second.transactions)
    assert sorted(got) == sorted(expected)
    for shard, txs in expected.items():
        assert [t[1] for t in got[shard]] == [t[1] for t in txs], shard
        assert got[shard] == txs
