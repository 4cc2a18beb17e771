"""``vsmux serve`` options for shared upstream streams (GatewaySettings.share_*)."""

from __future__ import annotations

import argparse

from vsmux.cli.args import positive_float, positive_int
from vsmux.core.settings import GatewaySettings

__all__ = ["add_arguments", "settings_from"]

# option -> (GatewaySettings field, parser, metavar, help)
_OPTIONS = {
    "--share-join-transactions": (
        "share_join_transactions",
        positive_int,
        "N",
        "a stream joins a feed at most this many transactions behind its newest",
    ),
    "--share-join-seconds": (
        "share_join_seconds",
        positive_float,
        "SECONDS",
        "... and its next transaction has been in the feed at most this long",
    ),
    "--share-ring-bytes": (
        "share_ring_bytes",
        positive_int,
        "BYTES",
        "recent whole transactions each feed keeps for joiners and slow consumers",
    ),
    "--share-max-feeds": (
        "share_max_feeds",
        positive_int,
        "N",
        "feeds at once; past it new shard streams read on their own",
    ),
    "--share-straggler-seconds": (
        "share_straggler_seconds",
        positive_float,
        "SECONDS",
        "longest a feed waits for one slow consumer before detaching it to a private stream",
    ),
    "--share-linger-seconds": (
        "share_linger_seconds",
        positive_float,
        "SECONDS",
        "how long a feed without consumers keeps its tablet stream open",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = GatewaySettings()
    group = parser.add_argument_group(
        "shared streams",
        "shard streams that ask the same tablet for the same events from close positions "
        "read one tablet stream (a feed); off per keyspace with share = false in the "
        "topology file, per request with the gRPC metadata 'vsmux-share: off'",
    )
    group.add_argument(
        "--share",
        dest="share_streams",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="share tablet streams between clients (default on)",
    )
    for option, (field, parse, metavar, text) in _OPTIONS.items():
        group.add_argument(
            option,
            option.replace("-", "_").replace("__", "--", 1),
            dest=field,
            type=parse,
            default=None,
            metavar=metavar,
            help=f"{text} (default {getattr(defaults, field):g})",
        )


def settings_from(args: argparse.Namespace) -> dict[str, object]:
    """The share_* settings the options gave (others keep their defaults)."""
    fields = ["share_streams", *(field for field, *_ in _OPTIONS.values())]
    return {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
