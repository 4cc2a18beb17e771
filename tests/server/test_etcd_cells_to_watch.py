"""Tablets of other cells from a real etcd (--cells-to-watch): read, followed, picked,
each cell under its own CellInfo, one that is missing or unreachable skipped."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.transport.etcd_server import EtcdServer, eventually, running_etcd
from vsmux.core.metrics import Metrics
from vsmux.core.picking import candidates
from vsmux.proto import topodata
from vsmux.proto.topodata import TabletType
from vsmux.server.etcd_topology import (
    TOPO_CELLS_UNAVAILABLE,
    EtcdTopoConfig,
    EtcdTopologyState,
    EtcdTopologyWatcher,
)
from vsmux.server.metrics_http import render_metrics
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology, vitess_records
from vsmux.transport import EtcdClient, open_etcd

GLOBAL = "/vitess/global"
ZONE1 = "/vitess/zone1"
ZONE2 = "/vitess/zone2"


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    with running_etcd(tmp_path) as server:
        yield server


@pytest.fixture
def second_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """Another etcd, for a cell whose topology lives on its own server."""
    (tmp_path / "second").mkdir()
    with running_etcd(tmp_path / "second") as server:
        yield server


def _zone1() -> Topology:
    tablets = [
        TabletInfo("commerce", "0", "zone1", 101, TabletType.PRIMARY, "127.0.0.1:15101"),
        TabletInfo("commerce", "0", "zone1", 102, TabletType.REPLICA, "127.0.0.1:15102"),
    ]
    return Topology(
        cell="zone1",
        keyspaces={"commerce": KeyspaceInfo("commerce", ["0"], ["orders"])},
        tablets=tablets,
    )


async def _publish_zone1(etcd: EtcdClient, topology: Topology, address: str) -> None:
    records = vitess_records(topology, global_root=GLOBAL, cell_root=ZONE1, cell_address=address)
    for key, value in records.items():
        await etcd.put(key.encode(), value)


def _tablet_key(root: str, cell: str, uid: int) -> bytes:
    return f"{root}/tablets/{cell}-{uid:010d}/Tablet".encode()


def _tablet_record(cell: str, uid: int, kind: TabletType = TabletType.REPLICA) -> bytes:
    return bytes(
        topodata.Tablet(
            alias=topodata.TabletAlias(cell=cell, uid=uid),
            hostname="127.0.0.1",
            port_map={"grpc": 15000 + uid},
            keyspace="commerce",
            shard="0",
            type=kind,
        )
    )


async def _put_cell(
    global_etcd: EtcdClient, cell_etcd: EtcdClient, cell: str, root: str, uids: list[int]
) -> None:
    """A cell's CellInfo (on ``cell_etcd``'s address) and its tablets under ``root``."""
    for uid in uids:
        await cell_etcd.put(_tablet_key(root, cell, uid), _tablet_record(cell, uid))
    info = topodata.CellInfo(server_address=cell_etcd.address, root=root)
    await global_etcd.put(f"{GLOBAL}/cells/{cell}/CellInfo".encode(), bytes(info))


def _uids(topology: Topology, cell: str) -> list[int]:
    return [t.uid for t in topology.tablets if t.cell == cell]


def _picked(topology: Topology, cells: list[str], preference: str = "onlyspecified") -> list[int]:
    found = candidates(
        topology, "commerce", "0", TabletType.REPLICA, cells, preference, "zone1", frozenset()
    )
    return [t.uid for t in found]


async def test_another_cell_on_the_same_etcd_is_read_followed_and_picked(
    aio_loop: None, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    address = etcd_server.address
    async with open_etcd(address) as etcd, trio.open_nursery() as nursery:
        await _publish_zone1(etcd, _zone1(), address)
        await _put_cell(etcd, etcd, "zone2", ZONE2, [201, 202])
        # zone2's serving graph is not the gateway's: it must not route.
        await etcd.put(f"{ZONE2}/keyspaces/elsewhere/SrvKeyspace".encode(), b"")

        # Without the option: today's behaviour, the own cell's tablets only.
        alone = Topology(cell="zone1")
        own_only = EtcdTopologyWatcher(EtcdTopoConfig(address, GLOBAL, "zone1"), alone)
        with trio.CancelScope() as scope:
            await nursery.start(own_only.run)
            assert _uids(alone, "zone2") == []
            scope.cancel()

        topology = Topology(cell="zone1")
        metrics = Metrics()
        config = EtcdTopoConfig(address, GLOBAL, "zone1", cells_to_watch=("zone1", "zone2"))
        watcher = EtcdTopologyWatcher(config, topology, metrics=metrics)
        with caplog.at_level(logging.INFO, "vsmux.topology"):
            await nursery.start(watcher.run)
        assert f"tablets of cell 'zone2' from etcd at {address} under '{ZONE2}': 2" in caplog.text
        assert _uids(topology, "zone1") == [101, 102]
        assert _uids(topology, "zone2") == [201, 202]
        assert list(topology.keyspaces) == ["commerce"]
        assert metrics.gateway[TOPO_CELLS_UNAVAILABLE] == 0
        # A VStream asking for zone2 finds its tablets.
        assert _picked(topology, ["zone2"]) == [201, 202]
        assert _picked(topology, ["zone2"], "preferlocalwithalias") == [102, 201, 202]

        # A tablet added and one removed in zone2 are followed.
        await etcd.put(_tablet_key(ZONE2, "zone2", 203), _tablet_record("zone2", 203))
        await etcd.delete(_tablet_key(ZONE2, "zone2", 201))
        await eventually(lambda: _uids(topology, "zone2") == [202, 203])

        # A bad record there is logged with its key; the rest keeps serving.
        bad = _tablet_key(ZONE2, "zone2", 202)
        with caplog.at_level(logging.WARNING, "vsmux.topology"):
            await etcd.put(bad, b"\x0a\x10truncated")
            await eventually(lambda: f"{bad.decode()}: not a topodata.Tablet" in caplog.text)
        assert _uids(topology, "zone2") == [202, 203]

        # The Shard record's primary retypes a tablet of the other cell too.
        shard = topodata.Shard(
            primary_alias=topodata.TabletAlias(cell="zone2", uid=203), is_primary_serving=True
        )
        await etcd.put(f"{GLOBAL}/keyspaces/commerce/shards/0/Shard".encode(), bytes(shard))
        await eventually(
            lambda: (
                {t.uid: t.tablet_type for t in topology.tablets if t.cell == "zone2"}
                == {202: TabletType.REPLICA, 203: TabletType.PRIMARY}
            )
        )

        # zone2 moves to another root: read again from there.
        await _put_cell(etcd, etcd, "zone2", "/moved/zone2", [211])
        await eventually(lambda: _uids(topology, "zone2") == [211])
        nursery.cancel_scope.cancel()


async def test_a_cell_on_its_own_etcd_is_kept_through_its_outage(
    aio_loop: None,
    etcd_server: EtcdServer,
    second_etcd: EtcdServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = etcd_server.address
    state = EtcdTopologyState()
    metrics = Metrics()
    topology = Topology(cell="zone1")
    async with trio.open_nursery() as nursery:
        async with open_etcd(address) as etcd, open_etcd(second_etcd.address) as etcd2:
            await _publish_zone1(etcd, _zone1(), address)
            await _put_cell(etcd, etcd2, "zone2", ZONE2, [201])
        config = EtcdTopoConfig(address, GLOBAL, "zone1", cells_to_watch=("zone2",))
        await nursery.start(EtcdTopologyWatcher(config, topology, state, metrics).run)
        assert _uids(topology, "zone2") == [201]

        with caplog.at_level(logging.INFO, "vsmux.topology"):
            second_etcd.stop()
            await eventually(lambda: "zone2" in state.cells_unavailable)
            assert metrics.gateway[TOPO_CELLS_UNAVAILABLE] == 1
            assert "its last 1 tablets stay in use" in caplog.text
            # The own cell is still followed, and zone2's last tablets stay.
            assert state.connected
            async with open_etcd(address) as etcd:
                await etcd.put(_tablet_key(ZONE1, "zone1", 103), _tablet_record("zone1", 103))
            await eventually(lambda: _uids(topology, "zone1") == [101, 102, 103])
            assert _uids(topology, "zone2") == [201]

            second_etcd.start()
            async with open_etcd(second_etcd.address) as etcd2:
                await etcd2.put(_tablet_key(ZONE2, "zone2", 202), _tablet_record("zone2", 202))
            await eventually(lambda: _uids(topology, "zone2") == [201, 202], 15)
            await eventually(lambda: not state.cells_unavailable)
        assert metrics.gateway[TOPO_CELLS_UNAVAILABLE] == 0
        assert "tablets of cell 'zone2'" in caplog.text and "(back)" in caplog.text
        nursery.cancel_scope.cancel()


async def test_the_own_etcds_restart_reads_the_other_cells_again(
    aio_loop: None, etcd_server: EtcdServer
) -> None:
    address = etcd_server.address
    state = EtcdTopologyState()
    topology = Topology(cell="zone1")
    async with trio.open_nursery() as nursery:
        async with open_etcd(address) as etcd:
            await _publish_zone1(etcd, _zone1(), address)
            await _put_cell(etcd, etcd, "zone2", ZONE2, [201])
        config = EtcdTopoConfig(address, GLOBAL, "zone1", cells_to_watch=("zone2",))
        await nursery.start(EtcdTopologyWatcher(config, topology, state).run)
        etcd_server.stop()
        await eventually(lambda: not state.connected)
        assert _uids(topology, "zone2") == [201]
        etcd_server.start()
        async with open_etcd(address) as etcd:
            await etcd.put(_tablet_key(ZONE2, "zone2", 202), _tablet_record("zone2", 202))
        await eventually(lambda: state.connected, 15)
        await eventually(lambda: _uids(topology, "zone2") == [201, 202])
        assert state.loads >= 2
        nursery.cancel_scope.cancel()


async def test_a_listed_cell_without_cell_info_is_reported_and_skipped(
    aio_loop: None, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    address = etcd_server.address
    state = EtcdTopologyState()
    metrics = Metrics()
    topology = Topology(cell="zone1")
    async with open_etcd(address) as etcd, trio.open_nursery() as nursery:
        await _publish_zone1(etcd, _zone1(), address)
        config = EtcdTopoConfig(address, GLOBAL, "zone1", cells_to_watch=("zone9",))
        with caplog.at_level(logging.WARNING, "vsmux.topology"):
            await nursery.start(EtcdTopologyWatcher(config, topology, state, metrics).run)
        assert "no CellInfo for cell 'zone9'" in caplog.text
        assert "its tablets are not known until one appears" in caplog.text
        assert set(state.cells_unavailable) == {"zone9"}
        assert metrics.gateway[TOPO_CELLS_UNAVAILABLE] == 1
        assert b"vsmux_topo_server_cells_unavailable 1.0" in render_metrics(metrics)
        # The rest serves.
        assert state.connected
        assert _uids(topology, "zone1") == [101, 102]

        # The CellInfo appears: zone9 is read from then on.
        await _put_cell(etcd, etcd, "zone9", "/vitess/zone9", [901])
        await eventually(lambda: _uids(topology, "zone9") == [901])
        assert metrics.gateway[TOPO_CELLS_UNAVAILABLE] == 0
        # And deleted: its tablets go.
        await etcd.delete(b"/vitess/global/cells/zone9/CellInfo")
        await eventually(lambda: _uids(topology, "zone9") == [])
        assert set(state.cells_unavailable) == {"zone9"}
        nursery.cancel_scope.cancel()


async def test_a_cell_whose_etcd_does_not_answer_holds_up_no_other(
    aio_loop: None, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    address = etcd_server.address
    state = EtcdTopologyState()
    topology = Topology(cell="zone1")
    async with open_etcd(address) as etcd, trio.open_nursery() as nursery:
        await _publish_zone1(etcd, _zone1(), address)
        # A CellInfo pointing at a port nothing listens on.
        info = topodata.CellInfo(server_address="127.0.0.1:9", root=ZONE2)
        await etcd.put(f"{GLOBAL}/cells/zone2/CellInfo".encode(), bytes(info))
        await _put_cell(etcd, etcd, "zone3", "/vitess/zone3", [301])
        config = EtcdTopoConfig(address, GLOBAL, "zone1", cells_to_watch=("zone2", "zone3"))
        with caplog.at_level(logging.WARNING, "vsmux.topology"), trio.fail_after(10):
            await nursery.start(EtcdTopologyWatcher(config, topology, state).run)
        assert "tablets of cell 'zone2' under '/vitess/zone2'" in caplog.text
        assert "none of its tablets known" in caplog.text
        assert set(state.cells_unavailable) == {"zone2"}
        assert state.connected
        assert _uids(topology, "zone1") == [101, 102]
        assert _uids(topology, "zone3") == [301]
        nursery.cancel_scope.cancel()


async def test_alias_cells_are_not_watched_unless_listed(
    aio_loop: None, etcd_server: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    address = etcd_server.address
    topology = _zone1()
    topology.cells_aliases = {"region1": ["zone1", "zone2"]}
    async with open_etcd(address) as etcd, trio.open_nursery() as nursery:
        await _publish_zone1(etcd, topology, address)
        await _put_cell(etcd, etcd, "zone2", ZONE2, [201])
        loaded = Topology(cell="zone1")
        config = EtcdTopoConfig(address, GLOBAL, "zone1")
        with caplog.at_level(logging.INFO, "vsmux.topology"):
            await nursery.start(EtcdTopologyWatcher(config, loaded).run)
        assert loaded.cells_aliases == {"region1": ["zone1", "zone2"]}
        assert _uids(loaded, "zone2") == []
        assert "cells 'zone2' of alias 'region1' (which holds cell 'zone1')" in caplog.text
        nursery.cancel_scope.cancel()
