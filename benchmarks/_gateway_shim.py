"""A stand-in for ``vsmux serve`` built from the library's own parts.

Used by the benchmarks only with ``--gateway shim`` (e.g. to compare against
the CLI, or on a tree where the CLI is not wired yet). It reads the replay
tablets' topology file (a plain subset of the topology format: one keyspace,
primary tablets with addresses) and serves ``open_gateway_server`` with the
gRPC tablet sources, exactly the objects the CLI wires.

Usage: python benchmarks/_gateway_shim.py --topology FILE --listen 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

import trio
import trio_asyncio

from vsmux.mux.api import Gateway
from vsmux.mux.session import run_vstream
from vsmux.proto.topodata import TabletType
from vsmux.server.app import open_gateway_server
from vsmux.server.tables import StaticTableCatalog
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology, split_address
from vsmux.transport import GrpcTabletSource, TabletChannels, open_tablet_channels


def load(path: Path) -> Topology:
    data: dict[str, Any] = tomllib.loads(path.read_text())
    topo = Topology(cell=data["cell"])
    for name, ks in data["keyspaces"].items():
        topo.keyspaces[name] = KeyspaceInfo(name, list(ks["shards"]))
    for t in data["tablets"]:
        topo.tablets.append(
            TabletInfo(
                keyspace=t["keyspace"],
                shard=t["shard"],
                cell=t["cell"],
                uid=int(t["uid"]),
                tablet_type=TabletType[t["type"].upper()],
                address=t["address"],
            )
        )
    return topo


class _Directory:
    def __init__(self, channels: TabletChannels) -> None:
        self._channels = channels

    def source_for(self, tablet: TabletInfo) -> GrpcTabletSource:
        return self._channels.source(tablet)


async def serve(topology: Topology, host: str, port: int, window: int) -> None:
    async with trio_asyncio.open_loop(), open_tablet_channels() as default_channels:
        # An experiment knob: a smaller HTTP/2 inbound window, per stream and
        # per connection (one stream per connection).
        channels = (
            TabletChannels(stream_window_bytes=window, streams_per_connection=1)
            if window
            else default_channels
        )
        try:
            gateway = Gateway(topology, _Directory(channels))
            catalog = StaticTableCatalog({name: ["orders"] for name in topology.keyspaces})
            async with open_gateway_server(gateway, run_vstream, catalog, host, port):
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        return
        finally:
            channels.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--topology", required=True)
    p.add_argument("--listen", default="127.0.0.1:15991")
    p.add_argument(
        "--tablet-window", type=int, default=0, help="HTTP/2 inbound window per tablet (bytes)"
    )
    args = p.parse_args()
    host, port = split_address(args.listen)
    try:
        trio.run(serve, load(Path(args.topology)), host, port, args.tablet_window)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
