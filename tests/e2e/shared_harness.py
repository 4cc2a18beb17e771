"""Shared upstream streams end to end: tablets on loopback gRPC, a sharing gateway, clients.

- :func:`open_sharing_stack`: a simulated cluster's tablets each on their own
  loopback gRPC server (``serve_cluster_tablets``, as ``vsmux cluster``
  serves them), and in front of them a gateway assembled as ``vsmux serve``
  assembles it (pooled tablet channels, a feed hub, the gRPC endpoint), in
  this process so a test can read the hub's counters. The tablets count
  their streams (``cluster.stream_counts``).
- :class:`Writer`: commits transactions at a rate and notes when each GTID
  of each shard was committed (the start of a delivery latency).
- Clients, each noting per shard every GTID number it received and when
  (:class:`Received`): :class:`OfficialClient` (grpcio with the stubs
  generated from Vitess's own protos; its reading thread can be slowed to a
  crawl), :class:`TailProcess` (a real ``vsmux tail`` process) and
  :func:`run_library_tail` (``vsmux tail``'s loop, in this process).

Loopback addresses only; everything is closed when its block ends.
"""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.interop.official.official_client import StreamReader
from vsmux.client.request import StreamOptions
from vsmux.client.tail import TailConfig, run_tail
from vsmux.core.settings import GatewaySettings
from vsmux.mux import FeedHub, Gateway, open_feed_hub, run_vstream
from vsmux.server.app import open_gateway_server
from vsmux.server.directory import RoutingDirectory
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog
from vsmux.sources._simulated import SimulatedCluster, Upsert
from vsmux.topology import Topology
from vsmux.transport import (
    asyncio_loop,
    grpc_connector,
    open_tablet_channels,
    serve_cluster_tablets,
)

__all__ = [
    "OfficialClient",
    "Received",
    "SharingStack",
    "TailProcess",
    "Writer",
    "median_latency",
    "official_request",
    "open_sharing_stack",
    "run_library_tail",
    "seq_of",
]

ROW, VGTID = 12, 15  # binlogdata.VEventType numbers (Vitess's own)


def seq_of(gtid: str) -> int:
    """N of ``MySQL56/<uuid>:1-N``; 0 for ``current`` or no position."""
    if ":" not in gtid:
        return 0
    return int(gtid.rsplit(":", 1)[1].rsplit("-", 1)[-1])


# -- the stack -------------------------------------------------------------------


@dataclass
class SharingStack:
    cluster: SimulatedCluster
    topology: Topology  # the tablets with their loopback addresses
    hub: FeedHub
    gateway: Gateway
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@asynccontextmanager
async def open_sharing_stack(
    cluster: SimulatedCluster, settings: GatewaySettings
) -> AsyncIterator[SharingStack]:
    """The cluster's tablets on loopback ports and a sharing gateway before them."""
    async with (
        asyncio_loop(batch_callbacks=True),
        serve_cluster_tablets(cluster, "127.0.0.1") as topology,
        open_tablet_channels(connect_timeout=5.0) as channels,
        open_feed_hub(RoutingDirectory(channels), topology, settings) as hub,
    ):
        gateway = Gateway(topology, hub.sources, settings, feeds=hub)
        catalog = ClusterTableCatalog(cluster, StaticTableCatalog())
        async with open_gateway_server(gateway, run_vstream, catalog) as server:
            yield SharingStack(cluster, topology, hub, gateway, server.port)


# -- writes ----------------------------------------------------------------------


class Writer:
    """Commits customer upserts to ``keyspace``; ``commits[(shard, n)]`` is when GTID n was.

    Each transaction upserts ``rows`` new customers with a ``payload``-byte
    email; every shard a transaction touches commits its part as one GTID
    (so every GTID number after a stream's start is a transaction with rows).
    """

    def __init__(
        self, cluster: SimulatedCluster, keyspace: str, *, rows: int = 1, payload: int = 40
    ) -> None:
        self.cluster = cluster
        self.keyspace = keyspace
        self.shards = list(cluster.topology.serving_shards(keyspace))
        self.rows = rows
        self.payload = payload
        self.commits: dict[tuple[str, int], float] = {}
        self._next_id = 1

    def positions(self) -> dict[str, int]:
        return {s: seq_of(self.cluster.position(self.keyspace, s)) for s in self.shards}

    def write_one(self) -> None:
        before = self.positions()
        statements = []
        for _ in range(self.rows):
            key = self._next_id
            self._next_id += 1
            email = f"c{key}@".encode() + b"x" * self.payload
            values = {"customer_id": str(key).encode(), "email": email}
            statements.append(Upsert("customer", {**values, "created": b"2026-12-02 12:00:00"}))
        self.cluster.execute(self.keyspace, *statements)
        now = time.monotonic()
        for shard, n in self.positions().items():
            for seq in range(before[shard] + 1, n + 1):
                self.commits[(shard, seq)] = now

    async def run(self, rate: float) -> None:
        """About ``rate`` transactions a second until cancelled."""
        while True:
            self.write_one()
            await trio.sleep(1 / rate)


# -- what a client received --------------------------------------------------------


@dataclass
class Received:
    """Per shard: the GTID numbers received in order, when, and their rows.

    ``seqs[shard]`` lists every new position of the shard in arrival order
    (for a client of the official protos the first is the position it
    started at, from the ``[VGTID, OTHER]`` a ``current`` start sends).
    ``rows[(shard, n)]`` counts the row changes of GTID n and ``digests`` (official
    clients) hashes their ROW events' bytes.
    """

    name: str
    seqs: dict[str, list[int]] = field(default_factory=dict)
    at: dict[tuple[str, int], float] = field(default_factory=dict)
    rows: dict[tuple[str, int], int] = field(default_factory=dict)
    digests: dict[tuple[str, int], str] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event)
    _current: dict[str, int] = field(default_factory=dict)
    _pending_rows: dict[str, int] = field(default_factory=dict)
    _pending_digest: dict[str, Any] = field(default_factory=dict)

    def _unit(self, shard: str, n: int, rows: int, digest: str | None, now: float) -> None:
        self.seqs.setdefault(shard, []).append(n)
        self.at[(shard, n)] = now
        self.rows[(shard, n)] = rows
        if digest is not None:
            self.digests[(shard, n)] = digest
        changed, self.changed = self.changed, trio.Event()
        changed.set()

    def official_response(self, response: Any, now: float) -> None:
        """Take one ``vtgate.VStreamResponse`` of the generated classes."""
        for event in response.events:
            if event.type == ROW:
                shard = event.shard
                self._pending_rows[shard] = self._pending_rows.get(shard, 0) + len(
                    event.row_event.row_changes
                )
                digest = self._pending_digest.setdefault(shard, hashlib.sha256())
                digest.update(event.row_event.SerializeToString(deterministic=True))
            elif event.type == VGTID:
                for sg in event.vgtid.shard_gtids:
                    n = seq_of(sg.gtid)
                    if n and self._current.get(sg.shard) != n:
                        rows = self._pending_rows.pop(sg.shard, 0)
                        digest = self._pending_digest.pop(sg.shard, None)
                        self._unit(sg.shard, n, rows, digest.hexdigest() if digest else None, now)
                    self._current[sg.shard] = n

    def tail_line(self, line: str, now: float) -> None:
        """Take one ``vsmux tail --format json`` line (one row change)."""
        record = json.loads(line)
        shard = record["shard"]
        gtid = next(p["gtid"] for p in record["position"] if p["shard"] == shard)
        n = seq_of(gtid)
        if self._current.get(shard) != n:
            self._current[shard] = n
            self._unit(shard, n, 0, None, now)
        self.rows[(shard, n)] += 1

    # -- questions ----------------------------------------------------------------

    def transactions(self, shard: str) -> list[int]:
        """The GTID numbers received with rows (an official client's start left out)."""
        return [n for n in self.seqs.get(shard, []) if self.rows[(shard, n)]]

    def has_data_on(self, shards: Iterable[str]) -> bool:
        return all(self.transactions(s) for s in shards)

    def reached(self, final: dict[str, int]) -> bool:
        return all(self.seqs.get(s, [0])[-1] >= n for s, n in final.items())

    async def wait(self, pred: Callable[[Received], bool], timeout: float) -> None:
        with trio.fail_after(timeout):
            while not pred(self):
                await self.changed.wait()


def median_latency(
    clients: Iterable[Received], commits: dict[tuple[str, int], float], start: float, end: float
) -> tuple[float, int]:
    """p50 of commit-to-arrival seconds over GTIDs committed in [start, end), and how many."""
    samples = [
        client.at[key] - when
        for client in clients
        for key, when in commits.items()
        if start <= when < end and key in client.at
    ]
    assert samples, f"no transaction committed in [{start:.2f}, {end:.2f}) reached a client"
    return statistics.median(samples), len(samples)


# -- clients ----------------------------------------------------------------------


def official_request(official: Any, keyspace: str, start: dict[str, str] | None = None) -> Any:
    """What ``vsmux tail --keyspace K`` asks for, in the generated classes: every
    shard from ``current`` (or each shard of ``start`` from its position),
    every table, PRIMARY (so every client asks the tablets for the same
    events and may share their streams)."""
    b = official.binlogdata
    if start is None:
        shard_gtids = [b.ShardGtid(keyspace=keyspace, shard="", gtid="current")]
    else:
        shard_gtids = [b.ShardGtid(keyspace=keyspace, shard=s, gtid=g) for s, g in start.items()]
    return official.vtgate.VStreamRequest(
        tablet_type=official.topodata.PRIMARY,
        vgtid=b.VGtid(shard_gtids=shard_gtids),
        filter=b.Filter(rules=[b.Rule(match="/.*")]),
    )


class OfficialClient(StreamReader):
    """A grpcio client with the official stubs that notes what arrived when.

    ``start``: each shard's position to resume from (default: every shard
    from ``current``). ``pause``: seconds its reading thread sleeps after each response (a
    client slowed to a crawl; 0 reads at full speed). Set it from the Trio
    side at any time.
    """

    # Without BDP probing the HTTP/2 window stays at its initial 64 KiB, so a
    # client that does not read holds the gateway back instead of grpcio
    # buffering for it.
    channel_options = (("grpc.http2.bdp_probe", 0),)

    def __init__(
        self,
        official: Any,
        port: int,
        keyspace: str,
        name: str,
        *,
        start: dict[str, str] | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        request = official_request(official, keyspace, start)
        super().__init__(official, port, request, metadata=metadata)
        self.got = Received(name)
        self.pause = 0.0

    def _arrived(self, response: Any) -> None:
        super()._arrived(response)
        self.got.official_response(response, time.monotonic())

    def _to_trio(self, callback: Callable[..., None], *args: Any) -> None:
        super()._to_trio(callback, *args)
        pause = self.pause
        if pause and callback == self._arrived and not self._stopped:
            time.sleep(pause)  # the reading thread, not the Trio loop


class TailProcess:
    """A ``vsmux tail`` process (JSON lines, from ``current``); start ``run`` in a nursery."""

    def __init__(self, address: str, keyspace: str, name: str) -> None:
        self.command = [
            sys.executable,
            "-m",
            "vsmux",
            "tail",
            "--server",
            address,
            "--keyspace",
            keyspace,
            "--quiet",
        ]
        self.got = Received(name)
        self.returncode: int | None = None
        self._process: trio.Process | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        process = await trio.lowlevel.open_process(self.command, stdout=subprocess.PIPE)
        self._process = process
        task_status.started()
        assert process.stdout is not None
        buffer = b""
        try:
            async for chunk in process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                now = time.monotonic()
                for line in lines:
                    self.got.tail_line(line.decode(), now)
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                with trio.move_on_after(5):
                    self.returncode = await process.wait()

    def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()


class _Lines:
    """A text sink that hands every complete line to ``received``."""

    def __init__(self, received: Received) -> None:
        self._received = received
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        now = time.monotonic()
        for line in lines:
            self._received.tail_line(line, now)
        return len(text)

    def flush(self) -> None:
        pass


async def run_library_tail(address: str, keyspace: str, got: Received) -> int:
    """``vsmux tail --keyspace K --quiet`` as a library call, until cancelled."""
    config = TailConfig(stream=StreamOptions(keyspace=keyspace), quiet=True)
    return await run_tail(config, grpc_connector(address), _Lines(got), io.StringIO())  # type: ignore[arg-type]
