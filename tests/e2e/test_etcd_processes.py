"""``vsmux cluster`` registering in a real etcd, ``vsmux serve`` reading it, as processes.

The gateway is given only etcd's address: tablets, serving shards and
primaries come from the records the cluster writes and rewrites. The client
must keep every shard's transactions, once each and in order, through a
planned reparent (published to etcd) and an etcd restart mid-stream, and a
new request after them must resolve against the same cluster.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

import pytest
import trio
import trio_asyncio

from tests.e2e.e2e_harness import Reader, request_for, unit_seqs
from tests.e2e.test_failover_processes import Lines, contiguous
from tests.transport.etcd_server import EtcdServer, running_etcd


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    with running_etcd(tmp_path) as server:
        yield server


@pytest.fixture
def serve_log(tmp_path: Path) -> Iterator[BinaryIO]:
    """Where the gateway's log goes, read back at the end of the test."""
    with open(tmp_path / "serve.log", "w+b") as log:
        yield log


async def test_stream_through_a_reparent_and_an_etcd_restart(
    etcd_server: EtcdServer, serve_log: BinaryIO
) -> None:
    vsmux = [sys.executable, "-m", "vsmux"]
    cluster_cmd = [
        *vsmux,
        "cluster",
        "--topo-global-server-address",
        etcd_server.address,
        "--tablet-types",
        "primary,replica",
        "--shards",
        "-80,80-",
        "--rate",
        "40",
    ]
    serve_cmd = [
        *vsmux,
        "serve",
        "--topo-implementation",
        "etcd2",
        "--topo_global_server_address",
        etcd_server.address,
        "--topo-global-root",
        "/vitess/global",
        "--cell",
        "zone1",
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "INFO",
    ]

    def commits_on_both(n: int) -> object:
        return lambda rs: all(len(unit_seqs(rs).get(s, [])) >= n for s in ("-80", "80-"))

    async with trio.open_nursery() as nursery:
        run = partial(trio.run_process, stdout=subprocess.PIPE, check=False)
        cluster = await nursery.start(partial(run, cluster_cmd))
        cluster_out = Lines(cluster)
        await cluster_out.until("next: vsmux serve --topo-implementation etcd2")
        serve = await nursery.start(partial(run, serve_cmd, stderr=serve_log))
        banner = await Lines(serve).until("vsmux gateway listening on ")
        port = int(banner.rsplit(":", 1)[1])
        async with trio_asyncio.open_loop(), trio.open_nursery() as clients:
            reader = Reader(port, request_for(("commerce", "", "current")))
            clients.start_soon(reader.run)
            await reader.wait_for(commits_on_both(10), timeout=20)
            cluster.send_signal(signal.SIGUSR1)
            await cluster_out.until("planned reparent of commerce/")
            await reader.wait_for(commits_on_both(30), timeout=20)
            # etcd goes away mid-stream: the gateway keeps its topology.
            etcd_server.stop()
            await reader.wait_for(commits_on_both(45), timeout=20)
            await trio.to_thread.run_sync(etcd_server.start)
            # A reparent published once etcd is back reaches the gateway.
            cluster.send_signal(signal.SIGUSR1)
            await cluster_out.until("planned reparent of commerce/")
            await reader.wait_for(commits_on_both(70), timeout=30)
            # A new request resolves against the topology read from etcd.
            second = Reader(port, request_for(("commerce", "", "current")))
            clients.start_soon(second.run)
            await second.wait_for(commits_on_both(5), timeout=20)
            reader.stop()
            second.stop()
        for process in (serve, cluster):
            process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await serve.wait() == 0
            assert await cluster.wait() == 0
    assert reader.error is None
    seqs = unit_seqs(reader.responses)
    assert contiguous(seqs), seqs  # every shard's transactions once each, in order
    serve_log.seek(0)
    log = serve_log.read().decode()
    assert "topology of cell 'zone1' from etcd at" in log
    assert "topology changed" in log  # the reparents arrived through etcd
    assert "the last topology stays in use" in log
    assert "topology server back" in log


FOUR = ["-40", "40-80", "80-c0", "c0-"]
EIGHT = ["-20", "20-40", "40-60", "60-80", "80-a0", "a0-c0", "c0-e0", "e0-"]


async def test_stream_through_a_reshard_and_a_reparent_published_to_etcd(
    etcd_server: EtcdServer, serve_log: BinaryIO
) -> None:
    """4 -> 8 shards, then a reparent, with the gateway told only etcd's address."""
    vsmux = [sys.executable, "-m", "vsmux"]
    cluster_cmd = [
        *vsmux,
        "cluster",
        "--topo-global-server-address",
        etcd_server.address,
        "--tablet-types",
        "primary,replica",
        "--shards",
        ",".join(FOUR),
        "--rate",
        "80",
        "--reshard-after",
        "3",
    ]
    serve_cmd = [
        *vsmux,
        "serve",
        "--topo-implementation",
        "etcd2",
        "--topo-global-server-address",
        etcd_server.address,
        "--cell",
        "zone1",
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "INFO",
    ]

    def commits_on(shards: list[str], n: int) -> object:
        return lambda rs: all(len(unit_seqs(rs).get(s, [])) >= n for s in shards)

    async with trio.open_nursery() as nursery:
        run = partial(trio.run_process, stdout=subprocess.PIPE, check=False)
        cluster = await nursery.start(partial(run, cluster_cmd))
        cluster_out = Lines(cluster)
        await cluster_out.until("next: vsmux serve --topo-implementation etcd2")
        serve = await nursery.start(partial(run, serve_cmd, stderr=serve_log))
        banner = await Lines(serve).until("vsmux gateway listening on ")
        port = int(banner.rsplit(":", 1)[1])
        async with trio_asyncio.open_loop(), trio.open_nursery() as clients:
            reader = Reader(port, request_for(("commerce", "", "current")))
            clients.start_soon(reader.run)
            await reader.wait_for(commits_on(FOUR, 3), timeout=20)
            await cluster_out.until("resharded commerce: -40,40-80,80-c0,c0- -> ", timeout=20)
            await reader.wait_for(commits_on(EIGHT, 5), timeout=30)
            cluster.send_signal(signal.SIGUSR1)
            await cluster_out.until("planned reparent of commerce/")
            await reader.wait_for(commits_on(EIGHT, 15), timeout=30)
            later = Reader(port, request_for(("commerce", "", "current")))
            clients.start_soon(later.run)
            await later.wait_for(commits_on(EIGHT, 3), timeout=20)
            reader.stop()
            later.stop()
        for process in (serve, cluster):
            process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await serve.wait() == 0
            assert await cluster.wait() == 0
    assert reader.error is None
    assert later.error is None
    seqs = unit_seqs(reader.responses)
    assert contiguous(seqs), seqs  # every shard's transactions once each, in order
    assert set(seqs) == set(FOUR) | set(EIGHT)
    assert set(unit_seqs(later.responses)) == set(EIGHT)  # the new request: new shards only
