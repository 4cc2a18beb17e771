"""``vsmux tail``: stream row changes from a VStream gateway as JSON lines.

Works against vsmux or a real vtgate. The loop itself is
:func:`vsmux.client.tail.run_tail`; this module parses options and runs it in
Trio with an asyncio loop for grpclib. Ctrl-C ends the run with status 130;
the checkpoint then holds the last transaction written in full.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import trio

from vsmux.cli import tls
from vsmux.client.checkpoint import CheckpointError, CheckpointStore
from vsmux.client.formats import FORMATS
from vsmux.client.request import StreamOptions
from vsmux.client.tail import EXIT_USAGE, TailConfig, run_tail
from vsmux.transport import ClientTls, TlsFileError, TlsFiles, asyncio_loop, grpc_connector

__all__ = ["PASSWORD_ENV", "add_arguments", "run"]

#: Where ``--user``'s password is read from: never a command-line argument,
#: which other users of the machine could read in the process list.
PASSWORD_ENV = "VSMUX_PASSWORD"

EPILOG = """\
examples:
  vsmux tail --server 127.0.0.1:15991 --keyspace commerce
  vsmux tail --server 127.0.0.1:15991 --keyspace commerce --from copy --format debezium
  vsmux tail --server 127.0.0.1:15991 --keyspace commerce --tables customer,corder \\
      --checkpoint tail.db --client-id orders-feed --heartbeat 5
  vsmux tail --server localhost:15991 --keyspace commerce \\
      --ca ca.pem --cert client.pem --key client-key.pem
  VSMUX_PASSWORD=... vsmux tail --server localhost:15991 --keyspace commerce \\
      --ca ca.pem --user debezium

A checkpoint, when present for the client id, wins over --from.
Exit status: 0 when the server ends the stream cleanly or a --max-* limit is
reached, 1 on a server error, 2 on bad options.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--server", default="127.0.0.1:15991", help="gateway host:port")
    parser.add_argument("--keyspace", required=True, help="keyspace to stream")
    parser.add_argument("--shard", default="", help="one shard (default: every shard)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--tables", default="", help="comma-separated table names")
    which.add_argument("--filter", default="", help="table match rule, e.g. '/.*' (default)")
    parser.add_argument(
        "--tablet-type", default="primary", help="primary (default), replica or rdonly"
    )
    parser.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="current|copy|VGTID-JSON",
        help="where to start without a checkpoint: 'current' (default), 'copy' "
        "(copy every table first), or a VGtid as a JSON list",
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="json")
    parser.add_argument(
        "--transaction-metadata",
        action="store_true",
        help="--format debezium: fill each line's transaction block (id, total_order, "
        "data_collection_order), as the connector with provide.transaction.metadata=true",
    )
    parser.add_argument("--checkpoint", metavar="FILE", help="SQLite file to store positions in")
    parser.add_argument("--client-id", default="vsmux-tail", help="checkpoint row to use")
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=0,
        metavar="N",
        help="ask for a heartbeat every N idle seconds; reconnect after 3N seconds of silence",
    )
    parser.add_argument(
        "--stop-on-reshard", action="store_true", help="end cleanly when the keyspace reshards"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or notices on stderr")
    parser.add_argument(
        "--max-events",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop after N lines (a transaction cut short is printed again by the next run)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    tls = parser.add_argument_group(
        "TLS", "any of these connects over TLS (also spelled --tls-ca, --tls-cert, ...)"
    )
    tls.add_argument(
        "--ca",
        "--tls-ca",
        type=Path,
        metavar="FILE",
        help="CA certificate(s) to verify the gateway by (default: the system's)",
    )
    tls.add_argument(
        "--cert",
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="client certificate, for a gateway that requires one (mutual TLS)",
    )
    tls.add_argument("--key", "--tls-key", type=Path, metavar="FILE", help="its private key")
    tls.add_argument(
        "--server-name",
        "--tls-server-name",
        metavar="NAME",
        help="name the gateway's certificate must carry (default: the --server host)",
    )
    _add_auth_arguments(parser)


def _add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    auth = parser.add_argument_group(
        "authentication",
        f"for a gateway with --grpc_auth_mode static;\nthe password is read from ${PASSWORD_ENV}, "
        "never from the command line",
    )
    auth.add_argument("--user", metavar="NAME", help="username sent as gRPC metadata 'username'")


def _credentials(args: argparse.Namespace) -> dict[str, str]:
    """gRPC metadata ``username``/``password`` for --user; ValueError without a password."""
    if not args.user:
        return {}
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise ValueError(f"--user needs the password in the environment variable {PASSWORD_ENV}")
    return {"username": args.user, "password": password}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _config(args: argparse.Namespace) -> TailConfig:
    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    stream = StreamOptions(
        keyspace=args.keyspace,
        shard=args.shard,
        tables=tables,
        filter=args.filter,
        tablet_type=args.tablet_type,
        start=args.start or "current",
        heartbeat=args.heartbeat,
        stop_on_reshard=args.stop_on_reshard,
    )
    return TailConfig(
        stream=stream,
        format=args.format,
        client_id=args.client_id,
        start_given=args.start is not None,
        max_events=args.max_events,
        max_seconds=args.max_seconds,
        quiet=args.quiet,
        progress=not sys.stdout.isatty(),
        transaction_metadata=args.transaction_metadata,
    )


def _tls(args: argparse.Namespace) -> ClientTls | None:
    """The --ca/--cert/--key/--server-name options, files loaded; None without any."""
    return tls.client_tls(TlsFiles(args.cert, args.key, args.ca, args.server_name))


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        tls = _tls(args)
        credentials = _credentials(args)
    except (TlsFileError, ValueError) as exc:
        print(f"vsmux tail: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    store = None
    if args.checkpoint:
        try:
            store = CheckpointStore(args.checkpoint)
        except CheckpointError as exc:
            print(f"vsmux tail: {exc}", file=sys.stderr)
            return EXIT_USAGE

    async def main() -> int:
        async with asyncio_loop():
            return await run_tail(
                config,
                grpc_connector(args.server, credentials, tls=tls),
                sys.stdout,
                sys.stderr,
                store=store,
            )

    try:
        return trio.run(main)
    except KeyboardInterrupt:
        return 130
    finally:
        if store is not None:
            store.close()
        _silence_closed_stdout()


def _silence_closed_stdout() -> None:
    # When the reader of stdout has gone (`vsmux tail | head`), Python's exit
    # flush would print a BrokenPipeError; point stdout at /dev/null instead.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
