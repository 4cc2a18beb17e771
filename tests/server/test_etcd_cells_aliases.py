"""Cell aliases from a real etcd: read with the rest, followed by the watch, used by picking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.transport.etcd_server import EtcdServer, eventually, running_etcd
from vsmux.core.metrics import Metrics
from vsmux.core.picking import candidates
from vsmux.proto.topodata import TabletType
from vsmux.server.etcd_topology import EtcdTopoConfig, EtcdTopologyWatcher
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology, cells_alias_record, vitess_records
from vsmux.transport import open_etcd

GLOBAL = "/vitess/global"
CELL = "/vitess/zone1"


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    with running_etcd(tmp_path) as server:
        yield server


async def test_aliases_are_read_followed_and_rank_the_alias_cells_next(
    aio_loop: None, etcd_server: EtcdServer
) -> None:
    def tablet(cell: str, uid: int, kind: TabletType) -> TabletInfo:
        return TabletInfo("commerce", "0", cell, uid, kind, f"127.0.0.1:{15000 + uid}")

    published = Topology(
        cell="zone1",
        keyspaces={"commerce": KeyspaceInfo("commerce", ["0"])},
        tablets=[
            tablet("zone1", 101, TabletType.PRIMARY),
            tablet("zone3", 301, TabletType.REPLICA),
            tablet("zone2", 201, TabletType.REPLICA),
            tablet("zone1", 102, TabletType.REPLICA),
        ],
        cells_aliases={"region1": ["zone1", "zone2"]},
    )
    address = etcd_server.address
    async with open_etcd(address) as etcd, trio.open_nursery() as nursery:
        records = vitess_records(
            published, global_root=GLOBAL, cell_root=CELL, cell_address=address
        )
        for key, value in records.items():
            await etcd.put(key.encode(), value)
        topology = Topology(cell="zone1")
        watcher = EtcdTopologyWatcher(
            EtcdTopoConfig(address, GLOBAL, "zone1"), topology, metrics=Metrics()
        )
        await nursery.start(watcher.run)
        assert topology.cells_aliases == {"region1": ["zone1", "zone2"]}

        def picked(cells: list[str]) -> list[int]:
            found = candidates(
                topology, "commerce", "0", TabletType.REPLICA, cells, "preferlocalwithalias",
                "zone1", frozenset(),
            )  # fmt: skip
            return [t.uid for t in found]

        # zone2 is local through the alias: before the requested zone3.
        assert picked(["zone3"]) == [102, 201, 301]

        # The alias grows to zone3 in etcd; the watch brings it in.
        await etcd.put(
            f"{GLOBAL}/cells_aliases/region1/CellsAlias".encode(),
            cells_alias_record(["zone1", "zone2", "zone3"]),
        )
        await eventually(lambda: topology.cells_aliases == {"region1": ["zone1", "zone2", "zone3"]})
        assert picked(["zone1"]) == [102, 201, 301]

        await etcd.delete(f"{GLOBAL}/cells_aliases/region1/CellsAlias".encode())
        await eventually(lambda: topology.cells_aliases == {})
        assert picked(["zone1"]) == [102]
        nursery.cancel_scope.cancel()
