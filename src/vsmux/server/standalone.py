"""The ``vsmux serve`` program: a gateway for a topology file, until a signal.

Tablets with an address are reached over gRPC (pooled channels). Tablets
without one (``simulated = true`` in the file) run in-process: their
keyspaces are built as a :class:`SimulatedCluster` whose live topology the
gateway uses, so a simulated reshard shows up at once; the addressed
keyspaces are added to it.

With an etcd topology (``vsmux serve --topo-implementation etcd2``) the
gateway reads a Vitess cluster's records before it listens and follows them
while it runs (:mod:`vsmux.server.etcd_topology`); SHOW TABLES answers from
their SrvVSchema.

On SIGINT or SIGTERM the gateway stops accepting, running sessions end with
UNAVAILABLE "server shutting down", and the program returns 0. With TLS, SIGHUP
reads the certificate, key and CA files again: connections from then on get
the new ones, running streams carry on (:func:`reload_on_sighup`).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import trio

from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, open_feed_hub, run_vstream
from vsmux.server.app import GatewayServer, open_gateway_server
from vsmux.server.auth import Security
from vsmux.server.directory import RoutingDirectory
from vsmux.server.etcd_topology import EtcdTopoConfig, EtcdTopologyWatcher
from vsmux.server.execute import TableCatalog
from vsmux.server.gcsettings import settle_gc
from vsmux.server.memory import ReleasePolicy, return_memory
from vsmux.server.metrics_http import serve_metrics
from vsmux.server.pools import track_arenas
from vsmux.server.signals import stop_signals
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog, TopologyTableCatalog
from vsmux.sources import SimulatedCluster
from vsmux.topology import Topology
from vsmux.transport import (
    CONNECT_TIMEOUT_SECONDS,
    ClientTls,
    ServerTls,
    TlsFileError,
    asyncio_loop,
    open_tablet_channels,
)
from vsmux.wire.accel import ACCELERATED, DISABLE_ENV

__all__ = ["ServeConfig", "merge_simulated", "reload_on_sighup", "serve_until_signal"]

log = logging.getLogger("vsmux.server")


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything ``vsmux serve`` runs with, from its command line and topology file."""

    topology: Topology
    host: str = "127.0.0.1"
    port: int = 15991
    metrics: tuple[str, int] | None = None
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    tables: dict[str, list[str]] | None = None  # keyspace -> table names, for SHOW TABLES
    workload_rate: float = 0.0  # transactions/s on simulated keyspaces (0: none)
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS
    seed: int = 1
    # Keyword arguments for SimulatedCluster.build: its memory bounds.
    simulated: dict[str, Any] = field(default_factory=dict)
    tls: ServerTls | None = None  # the client port's TLS (--grpc_cert/key/ca)
    tablet_tls: ClientTls | None = None  # TLS to tablets (--tablet_grpc_*)
    # Authentication and the access file (--grpc_auth_mode, --access-file).
    security: Security = field(default_factory=Security)
    # Read and follow the topology from a Vitess cluster's etcd instead; then
    # ``topology`` is the (empty) object the records are written into.
    etcd: EtcdTopoConfig | None = None


def merge_simulated(
    topology: Topology, seed: int, **build: Any
) -> tuple[Topology, SimulatedCluster | None]:
    """The gateway's topology, and the in-process cluster if any tablet needs one.

    Keyspaces with any address-less tablet are simulated (with the file's
    shards and tablet types); the cluster's live topology is returned with
    the other keyspaces and their tablets added.
    """
    simulated = sorted({t.keyspace for t in topology.tablets if t.address is None})
    if not simulated:
        return topology, None
    types = sorted({t.tablet_type for t in topology.tablets if t.address is None})
    cluster = SimulatedCluster.build(
        {ks: topology.serving_shards(ks) for ks in simulated},
        cell=topology.cell,
        seed=seed,
        tablet_types=types,
        **build,
    )
    live = cluster.topology
    for name, info in topology.keyspaces.items():
        if name not in live.keyspaces:
            live.keyspaces[name] = replace(info, shards=list(info.shards))
    live.tablets.extend(t for t in topology.tablets if t.keyspace not in simulated)
    return live, cluster


#: The health entry that says whether the topology server is reachable. The
#: gateway itself stays SERVING meanwhile (it serves from the last topology).
TOPOLOGY_HEALTH = "vsmux.topology"


def _report_topology_health(watcher: EtcdTopologyWatcher, server: GatewayServer) -> None:
    """Make ``vsmux.topology``'s health follow the etcd watch from now on."""

    def report(connected: bool) -> None:
        server.server.set_health(TOPOLOGY_HEALTH, connected)

    watcher.on_connected = report
    report(watcher.state.connected)


async def serve_until_signal(config: ServeConfig, *, ready: Sequence[str] = ()) -> int:
    """Run the gateway until SIGINT/SIGTERM; 0 on a clean stop, 1 if it cannot start.

    ``ready`` lines are printed once the gateway listens (the CLI's banner).
    """
    topology, cluster = merge_simulated(config.topology, config.seed, **config.simulated)
    static = StaticTableCatalog(config.tables or {})
    catalog: TableCatalog = ClusterTableCatalog(cluster, static) if cluster else static
    if config.etcd is not None:
        catalog = TopologyTableCatalog(topology)
    # Installed before the server listens, so an early Ctrl-C (or SIGHUP) is not lost.
    with stop_signals() as signals:
        async with (
            reload_on_sighup(config.tls),
            asyncio_loop(batch_callbacks=True),
            open_tablet_channels(config.connect_timeout, tls=config.tablet_tls) as channels,
            open_feed_hub(RoutingDirectory(channels, cluster), topology, config.settings) as feeds,
            trio.open_nursery() as nursery,
        ):
            gateway = Gateway(topology, feeds.sources, config.settings, feeds=feeds)
            if config.etcd is not None:
                watcher = EtcdTopologyWatcher(config.etcd, topology, metrics=gateway.metrics)
                stopped = await signals.start_unless_stopped(nursery, watcher.run)
                if stopped is not None:
                    log.info("%s received before the topology was read: stopping", stopped)
                    nursery.cancel_scope.cancel()
                    return 0
            if config.metrics is not None:
                host, port = config.metrics
                try:
                    bound = await nursery.start(serve_metrics, gateway.metrics, host, port, feeds)
                except OSError as exc:
                    log.error("cannot serve metrics on %s:%d: %s", host, port, exc)
                    nursery.cancel_scope.cancel()
                    return 1
                log.info("metrics on http://%s:%d/metrics", host, bound)
            if cluster is not None and config.workload_rate > 0:
                nursery.start_soon(cluster.run_workload, config.workload_rate)
            try:
                server_cm = open_gateway_server(
                    gateway,
                    run_vstream,
                    catalog,
                    config.host,
                    config.port,
                    tls=config.tls,
                    security=config.security,
                    health_names=(TOPOLOGY_HEALTH,) if config.etcd is not None else (),
                )
                async with server_cm as server:
                    if config.etcd is not None:
                        _report_topology_health(watcher, server)
                    frozen = settle_gc()
                    log.debug("garbage collector: %d start-up objects frozen", frozen)
                    if not track_arenas():
                        log.debug("empty allocator pools stay resident (see vsmux.server.pools)")
                    # What ended sessions leave behind goes back to the system.
                    nursery.start_soon(
                        partial(return_memory, tablet_channels=[channels]),
                        [server.server],
                        gateway.metrics,
                        ReleasePolicy.after_linger(config.settings.share_linger_seconds),
                    )
                    if not ACCELERATED:
                        log.warning(
                            "the C wire loops are off (%s set, or vsmux.wire._accel not "
                            "built): the gateway spends ~1.7x the CPU per event; reinstall "
                            "with a C compiler and the Python headers to build them",
                            DISABLE_ENV,
                        )
                    for line in ready:
                        print(line.format(address=server.address), flush=True)
                    name = await signals.wait()
                    log.info("%s received: shutting down", name)
                    # Failovers being ridden out end now (counted as SHUTDOWN);
                    # their sessions end with "server shutting down" next.
                    gateway.failover.shutdown()
            except OSError as exc:
                log.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
                nursery.cancel_scope.cancel()
                return 1
            nursery.cancel_scope.cancel()
    return 0


@asynccontextmanager
async def reload_on_sighup(tls: ServerTls | None) -> AsyncIterator[None]:
    """While the block runs, each SIGHUP reloads ``tls`` from its files.

    New connections get the new certificates; open ones (and their streams)
    keep theirs. A reload that fails is logged and changes nothing. Without
    ``tls`` SIGHUP is left alone. Must be entered from Trio's main thread.
    """
    if tls is None:
        yield
        return
    with trio.open_signal_receiver(signal.SIGHUP) as hangups:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_reload_each, tls, hangups)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()


async def _reload_each(tls: ServerTls, hangups: AsyncIterator[int]) -> None:
    files = tls.files
    async for _ in hangups:
        try:
            tls.reload()
        except TlsFileError as exc:
            log.error("SIGHUP: TLS files not reloaded, the previous ones stay in use: %s", exc)
        else:
            log.info(
                "SIGHUP: TLS reloaded from %s, %s%s",
                files.cert,
                files.key,
                f", {files.ca}" if files.ca is not None else "",
            )
