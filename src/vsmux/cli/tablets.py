"""Serving a simulated cluster's tablets until a signal: ``vsmux cluster`` and ``fake-tablet``.

:func:`serve_tablets_until_signal` serves every tablet of the cluster on its own gRPC
server (:func:`vsmux.transport.serve_cluster_tablets`), writes the topology
file if asked, prints one line per tablet and the banner, runs the workload,
and returns 0 on SIGINT or SIGTERM (1 if a tablet cannot listen), after
closing every server. With ``etcd`` it also registers the tablets in a Vitess
topology in etcd, and keeps those records current
(:func:`vsmux.server.etcd_publish.publish_topology`). With TLS every tablet
speaks TLS only, and SIGHUP reads the certificate files again for new
connections.
"""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from vsmux.cli.failover_signals import failovers_on_signals
from vsmux.demo.runner import doubled_shards
from vsmux.server.etcd_publish import addressed_topology, publish_topology
from vsmux.server.signals import StopSignals, stop_signals
from vsmux.server.standalone import reload_on_sighup
from vsmux.sources import SimulatedCluster
from vsmux.topology import dump_topology
from vsmux.transport import ServerTls, asyncio_loop, serve_cluster_tablets

__all__ = ["cell_root_beside", "serve_tablets_until_signal"]


def cell_root_beside(global_root: str, cell: str) -> str:
    """A cell's root next to the global one, as Vitess's examples lay them out.

    ``/vitess/global`` -> ``/vitess/zone1``.
    """
    return posixpath.join(posixpath.dirname(global_root.rstrip("/")) or "/", cell)


async def serve_tablets_until_signal(
    cluster: SimulatedCluster,
    host: str,
    base_port: int,
    rate: float,
    topology_out: Path | None,
    banner: Sequence[str] = (),
    tls: ServerTls | None = None,
    failover_signals: bool = False,
    etcd: tuple[str, str] | None = None,
    reshard_after: float | None = None,
) -> int:
    """Serve ``cluster`` (over TLS with ``tls``) and run its workload until SIGINT/SIGTERM.

    With ``failover_signals``, SIGUSR1 and SIGUSR2 reparent or fail over a
    shard (:mod:`vsmux.cli.failover_signals`). With ``etcd`` (an etcd
    address and the global root) the tablets are registered there too. With
    ``reshard_after`` the first keyspace's shards are doubled that many seconds
    after the tablets are up, and the new tablets served.
    """
    # The signal receivers exist before anything is announced, so a Ctrl-C
    # (or SIGHUP) right after the banner is handled, not fatal.
    with stop_signals() as signals:
        async with reload_on_sighup(tls):
            return await _serve(
                cluster,
                host,
                base_port,
                rate,
                topology_out,
                banner,
                signals,
                tls,
                failover_signals,
                etcd,
                reshard_after,
            )


async def _reshard_later(
    cluster: SimulatedCluster,
    delay: float,
    host: str,
    tls: ServerTls | None,
    addresses: dict[str, str],
) -> None:
    """After ``delay`` s, double the first keyspace's shards and serve the new tablets.

    The new tablets' addresses go into ``addresses`` (the etcd publisher
    reads it), so they are registered as soon as they listen. Runs until
    cancelled, which closes their servers.
    """
    await trio.sleep(delay)
    keyspace = cluster.topology.keyspace_names()[0]
    old = cluster.topology.serving_shards(keyspace)
    new = doubled_shards(len(old))
    await cluster.reshard_in_slices(keyspace, new)
    # Serving every tablet again is simplest; the ones already served keep
    # their first address.
    async with serve_cluster_tablets(cluster, host, 0, tls=tls) as served:
        for tablet in served.tablets:
            if tablet.alias not in addresses and tablet.address:
                addresses[tablet.alias] = tablet.address
                print(f"tablet {tablet.alias} {tablet.keyspace}/{tablet.shard} {tablet.address}")
        print(f"resharded {keyspace}: {','.join(old)} -> {','.join(new)}", flush=True)
        await trio.sleep_forever()


async def _serve(
    cluster: SimulatedCluster,
    host: str,
    base_port: int,
    rate: float,
    topology_out: Path | None,
    banner: Sequence[str],
    signals: StopSignals,
    tls: ServerTls | None,
    failover_signals: bool = False,
    etcd: tuple[str, str] | None = None,
    reshard_after: float | None = None,
) -> int:
    # Batched asyncio callbacks, as the gateway runs them: with hundreds of
    # tablet streams, one callback per Trio step left the streams opened last
    # a fraction of the others' rate (BENCHMARKS.md, "Load", 200 clients).
    async with asyncio_loop(batch_callbacks=True), trio.open_nursery() as nursery:
        if failover_signals:
            await nursery.start(failovers_on_signals, cluster)
        try:
            serving = serve_cluster_tablets(cluster, host, base_port, tls=tls)
            async with serving as topology:
                if topology_out is not None:
                    await trio.Path(topology_out).write_text(dump_topology(topology))
                addresses = {t.alias: t.address for t in topology.tablets if t.address}
                if etcd is not None:
                    address, global_root = etcd
                    # etcd may not answer yet: a stop signal must still end the run.
                    stopped = await signals.start_unless_stopped(
                        nursery,
                        publish_topology,
                        address,
                        global_root,
                        cell_root_beside(global_root, topology.cell),
                        lambda: addressed_topology(cluster.topology, addresses),
                    )
                    if stopped is not None:
                        print(f"{stopped} received: stopping", file=sys.stderr)
                        nursery.cancel_scope.cancel()
                        return 0
                for tablet in topology.tablets:
                    print(
                        f"tablet {tablet.alias} {tablet.keyspace}/{tablet.shard} {tablet.address}"
                    )
                for line in banner:
                    print(line, flush=True)
                sys.stdout.flush()
                if rate > 0:
                    nursery.start_soon(cluster.run_workload, rate)
                if reshard_after is not None:
                    nursery.start_soon(_reshard_later, cluster, reshard_after, host, tls, addresses)
                name = await signals.wait()
                print(f"{name} received: stopping", file=sys.stderr)
                nursery.cancel_scope.cancel()
        except OSError as exc:
            print(f"vsmux: cannot listen on {host}: {exc}", file=sys.stderr)
            nursery.cancel_scope.cancel()
            return 1
    return 0
