"""``vsmux serve`` as a process: a topology file in, a gateway out, SIGTERM ends it."""

from __future__ import annotations

import signal
import subprocess
from functools import partial
from pathlib import Path

import trio
import trio_asyncio
from grpclib.const import Status

from tests.e2e.e2e_harness import Reader, banner_address, request_for, serve_command
from vsmux.topology import parse_topology

TOPOLOGY = """
cell = "zone1"
[keyspaces.commerce]
shards = ["-80", "80-"]
[keyspaces.customer]
shards = ["0"]
tables = ["customer", "corder"]
[[tablets]]
keyspace = "commerce"
shard = "-80"
type = "primary"
uid = 101
simulated = true
[[tablets]]
keyspace = "commerce"
shard = "80-"
type = "primary"
uid = 201
simulated = true
[[tablets]]
keyspace = "customer"
shard = "0"
type = "primary"
uid = 301
address = "127.0.0.1:1"
"""


def test_table_lists_from_the_topology_file() -> None:
    assert parse_topology(TOPOLOGY).table_lists() == {"customer": ["customer", "corder"]}


async def test_serve_streams_then_shuts_down_gracefully_on_sigterm(tmp_path: Path) -> None:
    topology = tmp_path / "topology.toml"
    topology.write_text(TOPOLOGY)
    command = serve_command(topology, "--workload-rate", "50")
    async with trio.open_nursery() as nursery:
        run = partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        process = await nursery.start(run)
        address = await banner_address(process)
        port = int(address.rsplit(":", 1)[1])
        async with trio_asyncio.open_loop(), trio.open_nursery() as clients:
            reader = Reader(port, request_for(("commerce", "", "current")))
            clients.start_soon(reader.run)
            await reader.wait_for(lambda rs: sum(len(r.events) for r in rs) >= 20, timeout=20)
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await reader.ended.wait()
        with trio.fail_after(20):
            code = await process.wait()
    assert code == 0
    assert reader.error is not None
    assert reader.error.status == Status.UNAVAILABLE
    assert reader.error.message == "server shutting down"
