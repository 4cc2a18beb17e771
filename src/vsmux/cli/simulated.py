"""Options for the simulated cluster's memory bounds, shared by serve, demo and cluster.

Each simulated shard keeps its binlog for ``--binlog-retention`` seconds and
at most ``--binlog-retention-bytes`` (a position older than that gets the
error a vttablet gives for a purged binlog), and the workload keeps each
table near ``--max-table-rows`` by archiving rows. The defaults keep a
long-running demo's memory flat; see :mod:`vsmux.sources._simulated.binlog`.
"""

from __future__ import annotations

import argparse
from typing import Any

from vsmux.cli.args import positive_float, positive_int
from vsmux.sources import DEFAULT_MAX_TABLE_ROWS, DEFAULT_RETENTION_BYTES, DEFAULT_RETENTION_SECONDS

__all__ = ["add_arguments", "build_options"]


def add_arguments(
    parser: argparse.ArgumentParser,
    *,
    retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    max_table_rows: int = DEFAULT_MAX_TABLE_ROWS,
) -> None:
    """Add the options; a command may give its own defaults (the demo keeps less)."""
    group = parser.add_argument_group(
        "simulated cluster memory", "what simulated tablets keep (bounded, so memory stays flat)"
    )
    group.add_argument(
        "--binlog-retention",
        type=positive_float,
        default=retention_seconds,
        metavar="SECONDS",
        help="how long a commit stays streamable on each simulated shard "
        f"(default {retention_seconds:g})",
    )
    group.add_argument(
        "--binlog-retention-bytes",
        type=positive_int,
        default=DEFAULT_RETENTION_BYTES,
        metavar="BYTES",
        help="memory each simulated shard's binlog may take "
        f"(default {DEFAULT_RETENTION_BYTES // 2**20} MiB)",
    )
    group.add_argument(
        "--max-table-rows",
        type=_rows,
        default=max_table_rows,
        metavar="ROWS",
        help="rows per table and keyspace the workload keeps, archiving the rest "
        f"(default {max_table_rows}; 0: tables grow without bound)",
    )


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``SimulatedCluster.build`` from the parsed options."""
    return {
        "retention_seconds": args.binlog_retention,
        "retention_bytes": args.binlog_retention_bytes,
        "max_table_rows": args.max_table_rows or None,
    }


def _rows(text: str) -> int:
    value = int(text)
    if value != 0 and value < 10:
        raise argparse.ArgumentTypeError("must be 0 (no bound) or at least 10")
    return value
