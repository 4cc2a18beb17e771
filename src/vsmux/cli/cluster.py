"""``vsmux cluster``: serve a simulated cluster's tablets over gRPC.

Every simulated tablet gets its own gRPC server (``/queryservice.Query``) on
``--listen-host``; a workload commits transactions at ``--rate`` per second;
the topology TOML written to ``--topology-out`` lists every tablet with its
address, ready for ``vsmux serve --topology FILE``. Runs until SIGINT or
SIGTERM, then closes every server and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import trio
import trio_asyncio

from vsmux.cli import simulated
from vsmux.sources.simulated import SimulatedCluster
from vsmux.topology import dump_topology
from vsmux.transport import serve_cluster_tablets

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topology-out", type=Path, required=True, metavar="FILE", help="topology TOML to write"
    )
    parser.add_argument(
        "--keyspace",
        action="append",
        metavar="NAME",
        help="a keyspace to simulate (repeat, each with its own --shards; default commerce)",
    )
    parser.add_argument(
        "--shards",
        action="append",
        metavar="LIST",
        help="comma-separated shards of the matching --keyspace (default -80,80-)",
    )
    parser.add_argument("--listen-host", default="127.0.0.1", help="address tablets listen on")
    parser.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="first tablet port, counting up (default 0: any free port for each)",
    )
    parser.add_argument("--cell", default="zone1", help="the tablets' cell")
    parser.add_argument(
        "--tablet-types",
        default="primary",
        help="comma-separated tablet types per shard: primary, replica, rdonly",
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="transactions per second (0: none)"
    )
    parser.add_argument("--seed", type=int, default=0, help="workload seed")
    simulated.add_arguments(parser)


def _keyspaces(args: argparse.Namespace) -> dict[str, list[str]]:
    names = args.keyspace or ["commerce"]
    shard_lists = args.shards or ["-80,80-"]
    if len(shard_lists) != len(names):
        raise ValueError("give one --shards list per --keyspace")
    return {
        name: [s.strip() for s in shards.split(",") if s.strip()]
        for name, shards in zip(names, shard_lists, strict=True)
    }


async def serve_until_signal(
    cluster: SimulatedCluster,
    host: str,
    base_port: int,
    rate: float,
    topology_out: Path | None,
    banner: Sequence[str] = (),
) -> int:
    """Serve ``cluster`` and run its workload until SIGINT/SIGTERM."""
    # The signal receiver exists before anything is announced, so a Ctrl-C
    # right after the banner still ends the run cleanly.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        return await _serve(cluster, host, base_port, rate, topology_out, banner, signals)


async def _serve(
    cluster: SimulatedCluster,
    host: str,
    base_port: int,
    rate: float,
    topology_out: Path | None,
    banner: Sequence[str],
    signals: AsyncIterator[int],
) -> int:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        try:
            serving = serve_cluster_tablets(cluster, host, base_port)
            async with serving as topology:
                if topology_out is not None:
                    await trio.Path(topology_out).write_text(dump_topology(topology))
                for tablet in topology.tablets:
                    print(
                        f"tablet {tablet.alias} {tablet.keyspace}/{tablet.shard} {tablet.address}"
                    )
                for line in banner:
                    print(line, flush=True)
                sys.stdout.flush()
                if rate > 0:
                    nursery.start_soon(cluster.run_workload, rate)
                async for signum in signals:
                    print(f"{signal.Signals(signum).name} received: stopping", file=sys.stderr)
                    break
                nursery.cancel_scope.cancel()
        except OSError as exc:
            print(f"vsmux: cannot listen on {host}: {exc}", file=sys.stderr)
            nursery.cancel_scope.cancel()
            return 1
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        keyspaces = _keyspaces(args)
        cluster = SimulatedCluster.build(
            keyspaces,
            cell=args.cell,
            seed=args.seed,
            tablet_types=args.tablet_types.split(","),
            **simulated.build_options(args),
        )
    except (KeyError, ValueError) as exc:
        print(f"vsmux cluster: {exc}", file=sys.stderr)
        return 2
    banner = []
    if args.topology_out is not None:
        banner.append(f"topology written to {args.topology_out}")
        banner.append(f"next: vsmux serve --topology {args.topology_out}")
    try:
        return trio.run(
            serve_until_signal,
            cluster,
            args.listen_host,
            args.base_port,
            args.rate,
            args.topology_out,
            banner,
        )
    except KeyboardInterrupt:
        return 0
