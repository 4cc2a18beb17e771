"""A VStream asking for another cell is served by that cell's tablet, known only from etcd.

The gateway's own cell (zone1) has the shard's primary; zone2's topology,
under its own CellInfo root, has a replica (the simulated cluster's, at a
server of its own). With ``--cells-to-watch zone2``
the watcher reads zone2's Tablet records, so a REPLICA request with
``cells: zone2`` and ``onlyspecified`` streams from the zone2 tablet's
server and never touches zone1's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_asyncio

from tests.e2e.e2e_harness import Reader, TabletService, request_for, unit_seqs
from tests.transport.etcd_server import EtcdServer, running_etcd
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, run_vstream
from vsmux.proto import topodata, vtgate
from vsmux.proto.topodata import TabletType
from vsmux.server.app import open_gateway_server
from vsmux.server.directory import RoutingDirectory
from vsmux.server.etcd_publish import addressed_topology
from vsmux.server.etcd_topology import EtcdTopoConfig, EtcdTopologyWatcher
from vsmux.server.tables import TopologyTableCatalog
from vsmux.sources import SimulatedCluster
from vsmux.topology import Topology, vitess_records
from vsmux.transport import open_etcd, open_grpc_server, open_tablet_channels
from vsmux.transport._codec import RawCodec

GLOBAL = "/vitess/global"
ZONE2 = "/vitess/zone2"
ZONE2_ALIAS = "zone2-0000000200"


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    with running_etcd(tmp_path) as server:
        yield server


async def test_a_replica_of_a_watched_cell_serves_a_request_for_that_cell(
    etcd_server: EtcdServer,
) -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["0"]}, seed=5, tablet_types=("primary", "replica")
    )
    primary, replica = cluster.topology.tablets
    assert replica.tablet_type == TabletType.REPLICA
    settings = GatewaySettings(retry_backoff_initial=0.01, retry_backoff_max=0.05)
    zone1_seen: list[Any] = []
    zone2_seen: list[Any] = []
    async with trio_asyncio.open_loop(), AsyncExitStack() as stack:
        _, zone1_port = await stack.enter_async_context(
            open_grpc_server([TabletService(cluster, primary.alias, zone1_seen)], codec=RawCodec())
        )
        # The simulated replica, published as zone2's (and not as zone1's).
        _, zone2_port = await stack.enter_async_context(
            open_grpc_server([TabletService(cluster, replica.alias, zone2_seen)], codec=RawCodec())
        )
        address = etcd_server.address
        async with open_etcd(address) as etcd:
            published = addressed_topology(
                cluster.topology, {primary.alias: f"127.0.0.1:{zone1_port}"}
            )
            records = vitess_records(
                published, global_root=GLOBAL, cell_root="/vitess/zone1", cell_address=address
            )
            records[f"{GLOBAL}/cells/zone2/CellInfo"] = bytes(
                topodata.CellInfo(server_address=address, root=ZONE2)
            )
            records[f"{ZONE2}/tablets/{ZONE2_ALIAS}/Tablet"] = bytes(
                topodata.Tablet(
                    alias=topodata.TabletAlias(cell="zone2", uid=200),
                    hostname="127.0.0.1",
                    port_map={"grpc": zone2_port},
                    keyspace="commerce",
                    shard="0",
                    type=TabletType.REPLICA,
                )
            )
            for key, value in records.items():
                await etcd.put(key.encode(), value)
        nursery = await stack.enter_async_context(trio.open_nursery())
        topology = Topology(cell=cluster.topology.cell)
        config = EtcdTopoConfig(address, GLOBAL, "zone1", cells_to_watch=("zone2",))
        await nursery.start(EtcdTopologyWatcher(config, topology).run)
        assert [t.alias for t in topology.tablets] == [primary.alias, ZONE2_ALIAS]
        channels = await stack.enter_async_context(open_tablet_channels(connect_timeout=5.0))
        gateway = Gateway(topology, RoutingDirectory(channels), settings)
        server = await stack.enter_async_context(
            open_gateway_server(gateway, run_vstream, TopologyTableCatalog(topology))
        )
        nursery.start_soon(cluster.run_workload, 200.0)
        request = request_for(
            ("commerce", "0", "current"),
            flags=vtgate.VStreamFlags(cells="zone2", cell_preference="onlyspecified"),
        )
        request.tablet_type = TabletType.REPLICA
        reader = Reader(server.port, request)
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(unit_seqs(rs).get("0", [])) >= 3, timeout=20)
        reader.stop()
        nursery.cancel_scope.cancel()
    assert reader.error is None
    assert zone2_seen
    assert zone1_seen == []
