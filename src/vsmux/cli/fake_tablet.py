"""``vsmux fake-tablet``: serve one simulated tablet over gRPC.

The tablet holds the rows of its shard's key range only, with a seeded
workload at ``--rate`` per second. Runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import sys

import trio

from vsmux.cli import tls
from vsmux.cli.tablets import serve_tablets_until_signal
from vsmux.sources import SimulatedCluster

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keyspace", default="commerce", help="keyspace name")
    parser.add_argument("--shard", default="0", help="shard name, e.g. -80 (default 0)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--cell", default="zone1", help="the tablet's cell")
    parser.add_argument("--uid", type=int, default=100, help="the tablet's uid")
    parser.add_argument(
        "--type", default="primary", choices=("primary", "replica", "rdonly"), help="tablet type"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="transactions per second")
    parser.add_argument("--seed", type=int, default=0, help="workload seed")
    tls.add_server_tls_arguments(parser, "the tablet")


def run(args: argparse.Namespace) -> int:
    try:
        cluster = SimulatedCluster.build(
            {args.keyspace: [args.shard]},
            cell=args.cell,
            seed=args.seed,
            tablet_types=(args.type,),
            first_uid=args.uid,
            partial=True,
        )
        server_tls = tls.server_tls(args)
    except (KeyError, ValueError, tls.TlsFileError) as exc:
        print(f"vsmux fake-tablet: {exc}", file=sys.stderr)
        return 2
    try:
        return trio.run(
            serve_tablets_until_signal,
            cluster,
            args.host,
            args.port,
            args.rate,
            None,
            (),
            server_tls,
        )
    except KeyboardInterrupt:
        return 0
