"""End-to-end harness: simulated tablets served over gRPC, the gateway, a client.

``open_stack(mode)`` gives a running gateway in front of a simulated
cluster whose tablets are either in-process (``"inprocess"``) or each served
on its own loopback gRPC port (``"grpc"``) and reached through the gRPC
tablet client, so the same tests cover both.

Each simulated tablet alias gets its own server; a few spare aliases are
served ahead of time so the tablets a reshard creates are reachable the
moment they exist (the remote topology is updated synchronously with the
reshard).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio
import trio_asyncio
from grpclib import GRPCError
from grpclib.client import Channel

from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.mux import Gateway, run_vstream
from vsmux.proto import binlogdata, vtgate, vtgateservice
from vsmux.server.app import GatewayServer, open_gateway_server
from vsmux.server.auth import Security
from vsmux.server.directory import RoutingDirectory
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog
from vsmux.sources._simulated.cluster import SimulatedCluster
from vsmux.sources._simulated.tablet import SimulatedTablet
from vsmux.topology import KeyspaceInfo, Topology
from vsmux.transport import SimulatedQueryService, open_grpc_server, open_tablet_channels
from vsmux.transport._codec import RawCodec

MODES = ["inprocess", "grpc"]
SPARE_TABLETS = 6
T = binlogdata.VEventType


class TabletService(SimulatedQueryService):
    """The simulated tablet holding ``alias`` at each call; records every VStream request."""

    def __init__(self, cluster: SimulatedCluster, alias: str, seen: list[Any]) -> None:
        super().__init__(lambda: _running_tablet(cluster, alias))
        self._seen = seen  # every VStream request received, as decoded

    def tablet_batches(self, request: binlogdata.VStreamRequest) -> Any:
        self._seen.append(request)
        return super().tablet_batches(request)


def _running_tablet(cluster: SimulatedCluster, alias: str) -> SimulatedTablet:
    for tablet in cluster.tablets():
        if tablet.alias == alias:
            return tablet
    raise VStreamError(Code.UNAVAILABLE, f"no tablet {alias} is running here")


class CountingDirectory:
    """Wraps a SourceDirectory and counts the vstreams opened per tablet alias."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.opened: dict[str, int] = {}

    def source_for(self, tablet: Any) -> Any:
        source = self._inner.source_for(tablet)
        counts = self.opened

        class Counted:
            @property
            def tablet(self) -> Any:
                return source.tablet

            def vstream(self, request: Any) -> Any:
                counts[tablet.alias] = counts.get(tablet.alias, 0) + 1
                return source.vstream(request)

            def stream_health(self) -> Any:
                return source.stream_health()

        return Counted()


@dataclass
class Stack:
    """A running gateway over a simulated cluster."""

    mode: str
    cluster: SimulatedCluster
    gateway: Gateway
    server: GatewayServer
    directory: CountingDirectory
    remote_topology: Topology | None = None
    addresses: dict[str, str] = field(default_factory=dict)
    # grpc mode: every binlogdata.VStreamRequest the tablets received, as sent
    tablet_requests: list[binlogdata.VStreamRequest] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    def reshard(self, keyspace: str, shards: list[str]) -> None:
        """Reshard the cluster; the remote topology follows before any await."""
        self.cluster.reshard(keyspace, shards)
        self._sync_remote()

    def reparent(self, keyspace: str, shard: str) -> str:
        """Planned reparent; the remote topology follows before any await."""
        alias = self.cluster.reparent(keyspace, shard)
        self._sync_remote()
        return alias

    async def fail_over(self, keyspace: str, shard: str, promote_after: float) -> str:
        """The primary dies; ``promote_after`` seconds later a replica takes over."""
        self.cluster.kill_primary(keyspace, shard)
        await trio.sleep(promote_after)
        alias = self.cluster.promote(keyspace, shard)
        self._sync_remote()
        return alias

    def _sync_remote(self) -> None:
        remote = self.remote_topology
        if remote is None:
            return
        for name, info in self.cluster.topology.keyspaces.items():
            remote.keyspaces[name] = KeyspaceInfo(name, list(info.shards))
        remote.tablets[:] = [
            replace(t, address=self.addresses[t.alias]) for t in self.cluster.topology.tablets
        ]


@asynccontextmanager
async def open_stack(
    mode: str,
    shards: list[str] | None = None,
    settings: GatewaySettings | None = None,
    security: Security | None = None,
    **build: Any,
) -> AsyncIterator[Stack]:
    """Cluster + (tablet servers) + gateway on loopback ports; all closed on exit.

    ``security``: the gateway's authentication and access file (default none).
    """
    cluster = SimulatedCluster.build({"commerce": shards or ["-80", "80-"]}, seed=7, **build)
    settings = settings or GatewaySettings(retry_backoff_initial=0.01, retry_backoff_max=0.05)
    catalog = ClusterTableCatalog(cluster, StaticTableCatalog())
    async with trio_asyncio.open_loop(), AsyncExitStack() as stack:
        if mode == "inprocess":
            directory = CountingDirectory(cluster)
            gateway = Gateway(cluster.topology, directory, settings)
            server = await stack.enter_async_context(
                open_gateway_server(gateway, run_vstream, catalog, security=security)
            )
            yield Stack(mode, cluster, gateway, server, directory)
            return
        addresses: dict[str, str] = {}
        seen: list[binlogdata.VStreamRequest] = []
        first_uid = min(t.uid for t in cluster.topology.tablets)
        count = len(cluster.topology.tablets) + SPARE_TABLETS
        cell = cluster.topology.cell
        for uid in range(first_uid, first_uid + count):
            alias = f"{cell}-{uid:010d}"
            _, port = await stack.enter_async_context(
                open_grpc_server([TabletService(cluster, alias, seen)], codec=RawCodec())
            )
            addresses[alias] = f"127.0.0.1:{port}"
        remote = Topology(cell=cell)
        channels = await stack.enter_async_context(open_tablet_channels(connect_timeout=5.0))
        directory = CountingDirectory(RoutingDirectory(channels))
        gateway = Gateway(remote, directory, settings)
        server = await stack.enter_async_context(
            open_gateway_server(gateway, run_vstream, catalog, security=security)
        )
        result = Stack(mode, cluster, gateway, server, directory, remote, addresses, seen)
        result._sync_remote()
        yield result


def request_for(
    *shard_gtids: tuple[str, str, str], flags: vtgate.VStreamFlags | None = None
) -> vtgate.VStreamRequest:
    return vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(
            shard_gtids=[
                binlogdata.ShardGtid(keyspace=k, shard=s, gtid=g) for k, s, g in shard_gtids
            ]
        ),
        flags=flags,
    )


class Reader:
    """A VStream call from the test body, read in the background.

    ``run`` (start it in a nursery) reads until the server ends the call,
    ``stop()`` is called, or it fails (the GRPCError is kept in ``error``).
    ``wait_for(pred)`` waits until ``pred(responses)`` holds.
    """

    def __init__(self, port: int, request: vtgate.VStreamRequest) -> None:
        self.port = port
        self.request = request
        self.responses: list[vtgate.VStreamResponse] = []
        self.error: GRPCError | None = None
        self.ended = trio.Event()
        self._progress = trio.Event()
        self._scope = trio.CancelScope()

    def _arrived(self, response: vtgate.VStreamResponse) -> None:
        self.responses.append(response)
        progress, self._progress = self._progress, trio.Event()
        progress.set()

    async def run(self) -> None:
        async def call() -> None:
            channel = Channel("127.0.0.1", self.port)
            try:
                stub = vtgateservice.VitessStub(channel)
                async for response in stub.v_stream(self.request):
                    self._arrived(response)
            except GRPCError as exc:
                self.error = exc
            finally:
                channel.close()

        try:
            with self._scope:
                await trio_asyncio.aio_as_trio(call)()
        finally:
            self.ended.set()
            self._progress.set()

    def stop(self) -> None:
        self._scope.cancel()

    async def wait_for(self, pred: Any, timeout: float = 10.0) -> list[vtgate.VStreamResponse]:
        with trio.fail_after(timeout):
            while not pred(self.responses):
                if self.ended.is_set():
                    raise AssertionError(f"stream ended first: {self.error!r}")
                await self._progress.wait()
        return self.responses


def events(responses: list[vtgate.VStreamResponse]) -> Iterator[binlogdata.VEvent]:
    for response in responses:
        yield from response.events


def commits(responses: list[vtgate.VStreamResponse]) -> int:
    return sum(1 for e in events(responses) if e.type == T.COMMIT)


def last_vgtid(responses: list[vtgate.VStreamResponse]) -> binlogdata.VGtid:
    found = [e.vgtid for e in events(responses) if e.type == T.VGTID and e.vgtid is not None]
    assert found, "no VGTID received"
    return found[-1]


def seq_of(gtid: str) -> int:
    """N of ``MySQL56/<uuid>:1-N`` (or ``:N``); 0 for no position."""
    if ":" not in gtid:
        return 0
    return int(gtid.rsplit(":", 1)[1].rsplit("-", 1)[-1])


def positions(vgtid: binlogdata.VGtid) -> dict[str, str]:
    return {sg.shard: sg.gtid for sg in vgtid.shard_gtids}


def caught_up(stack: Stack, keyspace: str = "commerce") -> Any:
    """A predicate: the stream's last VGTID is at every serving shard's position."""

    def check(responses: list[vtgate.VStreamResponse]) -> bool:
        found = [e.vgtid for e in events(responses) if e.type == T.VGTID and e.vgtid]
        if not found:
            return False
        want = {
            s: stack.cluster.position(keyspace, s)
            for s in stack.cluster.topology.serving_shards(keyspace)
        }
        return positions(found[-1]) == want

    return check


def task_count() -> int:
    """Tasks alive in this Trio run (to check that nothing outlives a call).

    trio-asyncio's socket watchers are left out: they belong to pooled tablet
    connections, which outlive calls on purpose.
    """

    def walk(task: trio.lowlevel.Task) -> int:
        own = 0 if task.name.endswith("._io_task") else 1
        return own + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


def gtid_seqs(
    responses: list[vtgate.VStreamResponse], start: dict[str, int] | None = None
) -> dict[str, list[int]]:
    """Per shard, the transaction number (N of ``uuid:1-N``) of each COMMIT's VGTID."""
    out: dict[str, list[int]] = {}
    current: dict[str, int] = dict(start or {})
    pending: list[str] = []
    for event in events(responses):
        if event.type == T.VGTID and event.vgtid is not None:
            for sg in event.vgtid.shard_gtids:
                n = seq_of(sg.gtid)
                if current.get(sg.shard) != n:
                    pending.append(sg.shard)
                current[sg.shard] = n
        elif event.type in (T.COMMIT, T.OTHER, T.DDL, T.JOURNAL):
            if event.type == T.COMMIT:
                for shard in pending:
                    out.setdefault(shard, []).append(current[shard])
            pending = []
    return out


def unit_seqs(
    responses: list[vtgate.VStreamResponse], start: dict[str, int] | None = None
) -> dict[str, list[int]]:
    """Per shard, the transaction number of each new position a VGTID carried.

    Unlike :func:`gtid_seqs` it counts every unit that moves a shard's position
    (a COMMIT, a DDL, an OTHER), so a shard's list is 1..N with no gap exactly
    when each of its GTIDs reached the client once.
    """
    out: dict[str, list[int]] = {}
    current: dict[str, int] = dict(start or {})
    for event in events(responses):
        if event.type == T.VGTID and event.vgtid is not None:
            for sg in event.vgtid.shard_gtids:
                n = seq_of(sg.gtid)
                if n and current.get(sg.shard) != n:  # 0: no position yet ("current")
                    out.setdefault(sg.shard, []).append(n)
                current[sg.shard] = n
    return out


async def banner_address(process: trio.Process) -> str:
    """The ``HOST:PORT`` a ``vsmux serve`` process says it listens on (its first line)."""
    assert process.stdout is not None
    data = b""
    with trio.fail_after(20):
        while b"\n" not in data:
            chunk = await process.stdout.receive_some(1024)
            assert chunk, "vsmux serve exited before listening"
            data += chunk
    first = data.split(b"\n", 1)[0].decode()
    assert first.startswith("vsmux gateway listening on "), first
    return first.rsplit(" ", 1)[1]


def serve_command(topology: Path, *options: str, log_level: str = "WARNING") -> list[str]:
    """``vsmux serve`` on ``topology`` at 127.0.0.1, any free port, as a user runs it."""
    return [
        sys.executable,
        "-m",
        "vsmux",
        "serve",
        "--topology",
        str(topology),
        "--listen",
        "127.0.0.1:0",
        *options,
        "--log-level",
        log_level,
    ]


async def stop_serve(process: trio.Process, seconds: float = 20.0) -> int:
    """SIGTERM ``process`` (a ``vsmux serve``) and wait for its exit code, shielded."""
    with trio.CancelScope(shield=True), trio.fail_after(seconds):
        process.send_signal(signal.SIGTERM)
        return await process.wait()
