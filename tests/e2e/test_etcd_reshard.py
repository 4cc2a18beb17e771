"""A reshard (4 -> 8 shards) seen by the gateway only through etcd.

Simulated tablets served over real gRPC register in a real etcd the way
``vsmux cluster`` does (``publish_topology``); the gateway's topology is
only what ``EtcdTopologyWatcher`` reads there. A client streaming the whole
keyspace keeps every transaction through the reshard (it follows the
journal), and a request made afterwards resolves to the eight new shards.
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
from tests.e2e.test_failover_processes import contiguous
from tests.transport.etcd_server import EtcdServer, running_etcd
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, run_vstream
from vsmux.server.app import open_gateway_server
from vsmux.server.directory import RoutingDirectory
from vsmux.server.etcd_publish import addressed_topology, publish_topology
from vsmux.server.etcd_topology import EtcdTopoConfig, EtcdTopologyWatcher
from vsmux.server.tables import TopologyTableCatalog
from vsmux.sources import SimulatedCluster
from vsmux.topology import Topology
from vsmux.transport import open_grpc_server, open_tablet_channels
from vsmux.transport._codec import RawCodec

FOUR = ["-40", "40-80", "80-c0", "c0-"]
EIGHT = ["-20", "20-40", "40-60", "60-80", "80-a0", "a0-c0", "c0-e0", "e0-"]


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    with running_etcd(tmp_path) as server:
        yield server


def _shards_seen(responses: list[Any]) -> set[str]:
    return set(unit_seqs(responses))


async def test_a_reshard_published_to_etcd(etcd_server: EtcdServer) -> None:
    cluster = SimulatedCluster.build({"commerce": FOUR}, seed=11)
    settings = GatewaySettings(retry_backoff_initial=0.01, retry_backoff_max=0.05)
    cell = cluster.topology.cell
    async with trio_asyncio.open_loop(), AsyncExitStack() as stack:
        # Servers for today's tablets and for the eight a reshard will create.
        addresses: dict[str, str] = {}
        first = min(t.uid for t in cluster.topology.tablets)
        for uid in range(first, first + len(FOUR) + len(EIGHT)):
            alias = f"{cell}-{uid:010d}"
            _, port = await stack.enter_async_context(
                open_grpc_server([TabletService(cluster, alias, [])], codec=RawCodec())
            )
            addresses[alias] = f"127.0.0.1:{port}"
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(
            publish_topology,
            etcd_server.address,
            "/vitess/global",
            "/vitess/zone1",
            lambda: addressed_topology(cluster.topology, addresses),
        )
        topology = Topology(cell=cell)
        watcher = EtcdTopologyWatcher(
            EtcdTopoConfig(etcd_server.address, "/vitess/global", cell), topology
        )
        await nursery.start(watcher.run)
        assert topology.serving_shards("commerce") == FOUR
        channels = await stack.enter_async_context(open_tablet_channels(connect_timeout=5.0))
        gateway = Gateway(topology, RoutingDirectory(channels), settings)
        server = await stack.enter_async_context(
            open_gateway_server(gateway, run_vstream, TopologyTableCatalog(topology))
        )
        nursery.start_soon(cluster.run_workload, 200.0)
        reader = Reader(server.port, request_for(("commerce", "", "current")))
        nursery.start_soon(reader.run)

        def commits_on(shards: list[str], n: int) -> Any:
            return lambda rs: all(len(unit_seqs(rs).get(s, [])) >= n for s in shards)

        await reader.wait_for(commits_on(FOUR, 5), timeout=20)
        cluster.reshard("commerce", EIGHT)
        await reader.wait_for(commits_on(EIGHT, 5), timeout=20)
        with trio.fail_after(5):  # etcd's watch brings the new SrvKeyspace
            while True:
                if topology.serving_shards("commerce") == EIGHT:
                    break
                await trio.sleep(0.02)
        later = Reader(server.port, request_for(("commerce", "", "current")))
        nursery.start_soon(later.run)
        await later.wait_for(commits_on(EIGHT, 3), timeout=20)
        reader.stop()
        later.stop()
        nursery.cancel_scope.cancel()
    assert reader.error is None
    assert later.error is None
    seqs = unit_seqs(reader.responses)
    assert contiguous(seqs), seqs  # every shard's transactions once each, in order
    assert set(seqs) == set(FOUR) | set(EIGHT)
    assert _shards_seen(later.responses) == set(EIGHT)
