"""``vsmux cluster``: serve a simulated cluster's tablets over gRPC.

Every simulated tablet gets its own gRPC server (``/queryservice.Query``) on
``--listen-host``; a workload commits transactions at ``--rate`` per second;
the topology TOML written to ``--topology-out`` lists every tablet with its
address, ready for ``vsmux serve --topology FILE``. With
``--topo-global-server-address HOST:PORT`` the tablets also register in etcd
as a Vitess cluster's would (global records under ``--topo-global-root``,
the cell's beside it: ``/vitess/global`` -> ``/vitess/zone1``), kept current
through reparents and a reshard (``--reshard-after``), for ``vsmux serve
--topo-implementation etcd2``. Runs until SIGINT or SIGTERM, then closes
every server and exits 0 (:mod:`vsmux.cli.tablets`).
With ``--tablet-types primary,replica``, SIGUSR1 reparents a random shard and
SIGUSR2 fails one over (:mod:`vsmux.cli.failover_signals`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from vsmux.cli import simulated, tls
from vsmux.cli.args import positive_float
from vsmux.cli.tablets import serve_tablets_until_signal
from vsmux.sources import SimulatedCluster

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology-out", type=Path, metavar="FILE", help="topology TOML to write")
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
    parser.add_argument(
        "--topo-implementation",
        "--topo_implementation",
        "--topo",
        dest="topo_implementation",
        choices=["etcd2"],
        help="register the tablets in a Vitess topology server of this kind (etcd2)",
    )
    parser.add_argument(
        "--topo-global-server-address",
        "--topo_global_server_address",
        dest="topo_global_server_address",
        metavar="HOST:PORT",
        help="the etcd to register the tablets in, as a Vitess cluster would",
    )
    parser.add_argument(
        "--topo-global-root",
        "--topo_global_root",
        dest="topo_global_root",
        default="/vitess/global",
        metavar="PATH",
        help="the global topology's root (default /vitess/global)",
    )
    parser.add_argument(
        "--reshard-after",
        type=positive_float,
        metavar="SECONDS",
        help="double the first keyspace's shards then, serving the new tablets",
    )
    simulated.add_arguments(parser)
    tls.add_server_tls_arguments(parser, "every tablet")


def _keyspaces(args: argparse.Namespace) -> dict[str, list[str]]:
    names = args.keyspace or ["commerce"]
    shard_lists = args.shards or ["-80,80-"]
    if len(shard_lists) != len(names):
        raise ValueError("give one --shards list per --keyspace")
    return {
        name: [s.strip() for s in shards.split(",") if s.strip()]
        for name, shards in zip(names, shard_lists, strict=True)
    }


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
        server_tls = tls.server_tls(args)
    except (KeyError, ValueError, tls.TlsFileError) as exc:
        print(f"vsmux cluster: {exc}", file=sys.stderr)
        return 2
    etcd = None
    if args.topo_implementation is not None and args.topo_global_server_address is None:
        print(
            "vsmux cluster: --topo-implementation needs --topo-global-server-address",
            file=sys.stderr,
        )
        return 2
    if args.topo_global_server_address is not None:
        etcd = (args.topo_global_server_address, args.topo_global_root)
    elif args.topology_out is None:
        print(
            "vsmux cluster: give --topology-out FILE, --topo-global-server-address HOST:PORT, "
            "or both",
            file=sys.stderr,
        )
        return 2
    banner = []
    if args.topology_out is not None:
        banner.append(f"topology written to {args.topology_out}")
        banner.append(f"next: vsmux serve --topology {args.topology_out}")
    if etcd is not None:
        banner.append(f"tablets registered in etcd at {etcd[0]} under {etcd[1]}")
        banner.append(
            f"next: vsmux serve --topo-implementation etcd2 --topo-global-server-address "
            f"{etcd[0]} --topo-global-root {etcd[1]} --cell {args.cell}"
        )
    try:
        return trio.run(
            serve_tablets_until_signal,
            cluster,
            args.listen_host,
            args.base_port,
            args.rate,
            args.topology_out,
            banner,
            server_tls,
            True,  # failover_signals
            etcd,
            args.reshard_after,
        )
    except KeyboardInterrupt:
        return 0
