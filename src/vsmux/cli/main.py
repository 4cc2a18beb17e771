"""``vsmux``: the command-line entry point.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this module only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vsmux import __version__
from vsmux.cli.args import attach_shard_values

__all__ = ["main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("vsmux.cli.serve", "run the VStream gateway"),
    "demo": ("vsmux.cli.demo", "run a simulated cluster, the gateway and a live view"),
    "tail": ("vsmux.cli.tail", "stream row changes from a gateway as JSON lines"),
    "cluster": ("vsmux.cli.cluster", "serve a simulated cluster's tablets over gRPC"),
    "fake-tablet": ("vsmux.cli.fake_tablet", "serve one simulated tablet over gRPC"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsmux",
        description="A VStream gateway: one change stream merged from every shard.",
    )
    parser.add_argument("--version", action="version", version=f"vsmux {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(attach_shard_values(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help()
        return 2
    result: int = args.run(args)
    return result
