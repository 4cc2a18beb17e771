"""The gateway's topology from a real etcd: loaded, watched, kept through a restart."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.transport.etcd_server import EtcdServer, eventually, running_etcd
from vsmux.core.metrics import Metrics
from vsmux.proto import topodata
from vsmux.proto.topodata import TabletType
from vsmux.server.etcd_topology import EtcdTopoConfig, EtcdTopologyState, EtcdTopologyWatcher
from vsmux.server.metrics_http import render_metrics
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology, vitess_records
from vsmux.transport import EtcdClient, open_etcd

GLOBAL = "/vitess/global"
CELL = "/vitess/zone1"


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    with running_etcd(tmp_path) as server:
        yield server


def _cluster(shards: list[str], primary_uid_offset: int = 1) -> Topology:
    tablets = []
    for index, shard in enumerate(shards):
        for n in (1, 2):
            uid = 100 * (index + 1) + n
            kind = TabletType.PRIMARY if n == primary_uid_offset else TabletType.REPLICA
            tablets.append(TabletInfo("commerce", shard, "zone1", uid, kind, f"127.0.0.1:{uid}"))
    return Topology(
        cell="zone1",
        keyspaces={"commerce": KeyspaceInfo("commerce", list(shards), ["orders"])},
        tablets=tablets,
    )


async def _publish(etcd: EtcdClient, topology: Topology, address: str) -> None:
    records = vitess_records(topology, global_root=GLOBAL, cell_root=CELL, cell_address=address)
    for key, value in records.items():
        await etcd.put(key.encode(), value)


async def test_loads_then_follows_a_reshard_and_a_primary_change(
    aio_loop: None, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    address = etcd_server.address
    async with open_etcd(address) as etcd, trio.open_nursery() as nursery:
        await _publish(etcd, _cluster(["-80", "80-"]), address)
        topology = Topology(cell="zone1")
        metrics = Metrics()
        config = EtcdTopoConfig(address, GLOBAL, "zone1")
        watcher = EtcdTopologyWatcher(config, topology, metrics=metrics)
        await nursery.start(watcher.run)
        assert topology.serving_shards("commerce") == ["-80", "80-"]
        assert topology.keyspaces["commerce"].tables == ["orders"]
        assert [t.uid for t in topology.tablets_for("commerce", "-80")] == [101, 102]

        # A reshard: the new shards' tablets and records, then SrvKeyspace.
        shards = ["-40", "40-80", "80-c0", "c0-"]
        await _publish(etcd, _cluster(shards), address)
        await eventually(lambda: topology.serving_shards("commerce") == shards)
        assert topology.tablets_for("commerce", "c0-")

        # A primary change written only to the Shard record.
        shard = topodata.Shard(
            primary_alias=topodata.TabletAlias(cell="zone1", uid=102), is_primary_serving=True
        )
        await etcd.put(f"{GLOBAL}/keyspaces/commerce/shards/-40/Shard".encode(), bytes(shard))
        await eventually(
            lambda: (
                {t.uid: t.tablet_type for t in topology.tablets_for("commerce", "-40")}
                == {101: TabletType.REPLICA, 102: TabletType.PRIMARY}
            )
        )

        # A bad record is logged with its key; the rest keeps its last value.
        bad_key = f"{CELL}/tablets/zone1-0000000101/Tablet"
        with caplog.at_level(logging.WARNING, "vsmux.topology"):
            await etcd.put(bad_key.encode(), b"\x0a\x10truncated")
            await etcd.put(
                f"{CELL}/keyspaces/commerce/SrvKeyspace".encode(),
                bytes(
                    topodata.SrvKeyspace(
                        partitions=[
                            topodata.SrvKeyspaceKeyspacePartition(
                                served_type=TabletType.PRIMARY,
                                shard_references=[
                                    topodata.ShardReference(
                                        name="-40", key_range=topodata.KeyRange(end=b"\x40")
                                    ),
                                    topodata.ShardReference(
                                        name="80-", key_range=topodata.KeyRange(start=b"\x80")
                                    ),
                                ],
                            )
                        ]
                    )
                ),
            )
            await eventually(lambda: "SrvKeyspace: key-range gap" in caplog.text)
        assert f"{bad_key}: not a topodata.Tablet record" in caplog.text
        assert topology.serving_shards("commerce") == shards
        assert 101 in {t.uid for t in topology.tablets_for("commerce", "-40")}
        assert b"vsmux_topo_server_bad_records_total 2.0" in render_metrics(metrics)
        nursery.cancel_scope.cancel()


async def test_an_etcd_restart_keeps_the_topology_and_catches_up(
    aio_loop: None, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    address = etcd_server.address
    state = EtcdTopologyState()
    metrics = Metrics()
    topology = Topology(cell="zone1")
    async with trio.open_nursery() as nursery:
        async with open_etcd(address) as etcd:
            await _publish(etcd, _cluster(["-80", "80-"]), address)
        config = EtcdTopoConfig(address, GLOBAL, "zone1")
        watcher = EtcdTopologyWatcher(config, topology, state, metrics)
        await nursery.start(watcher.run)
        assert b"vsmux_topo_server_connected 1.0" in render_metrics(metrics)
        with caplog.at_level(logging.INFO, "vsmux.topology"):
            etcd_server.stop()
            await eventually(lambda: not state.connected)
            assert b"vsmux_topo_server_connected 0.0" in render_metrics(metrics)
            # Still the last topology while etcd is away.
            assert topology.serving_shards("commerce") == ["-80", "80-"]
            assert "the last topology stays in use" in caplog.text
            etcd_server.start()
            # Written as soon as etcd is back: whether the watcher is still
            # reconnecting or already watching, it must see the change.
            async with open_etcd(address) as etcd:
                await _publish(etcd, _cluster(["-40", "40-80", "80-"]), address)
            await eventually(lambda: state.connected, 15)
            await eventually(lambda: topology.serving_shards("commerce") == ["-40", "40-80", "80-"])
        assert state.loads >= 2
        assert "topology server back" in caplog.text
        exposed = render_metrics(metrics)
        assert b"vsmux_topo_server_connected 1.0" in exposed
        assert f"vsmux_topo_server_loads_total {float(state.loads)}".encode() in exposed
        nursery.cancel_scope.cancel()


async def test_no_cell_info_is_retried_until_it_appears(
    aio_loop: None, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    address = etcd_server.address
    topology = Topology(cell="zone1")
    state = EtcdTopologyState()
    watcher = EtcdTopologyWatcher(EtcdTopoConfig(address, GLOBAL, "zone1"), topology, state)
    async with trio.open_nursery() as nursery:
        with caplog.at_level(logging.WARNING, "vsmux.topology"):
            nursery.start_soon(watcher.run)
            await eventually(lambda: "no CellInfo for cell 'zone1'" in caplog.text)
        assert "no topology yet" in caplog.text
        async with open_etcd(address) as etcd:
            await _publish(etcd, _cluster(["-"]), address)
        await eventually(lambda: "commerce" in topology.keyspaces, 15)
        nursery.cancel_scope.cancel()


async def test_a_partition_is_noticed_and_survived(
    aio_loop: None, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    """etcd frozen (connections open, nothing answered): pings notice, the topology stays."""
    address = etcd_server.address
    state = EtcdTopologyState()
    topology = Topology(cell="zone1")
    async with trio.open_nursery() as nursery:
        async with open_etcd(address) as etcd:
            await _publish(etcd, _cluster(["-80", "80-"]), address)
        config = EtcdTopoConfig(address, GLOBAL, "zone1", keepalive=0.5)
        await nursery.start(EtcdTopologyWatcher(config, topology, state).run)
        etcd_server.pause()
        try:
            await eventually(lambda: not state.connected)
            assert topology.serving_shards("commerce") == ["-80", "80-"]
        finally:
            etcd_server.resume()
        async with open_etcd(address) as etcd:
            await _publish(etcd, _cluster(["-"]), address)
        await eventually(lambda: topology.serving_shards("commerce") == ["-"], 15)
        assert state.connected
        nursery.cancel_scope.cancel()
