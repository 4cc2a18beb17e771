"""``vsmux serve``: run the VStream gateway for a topology file, or for a
Vitess cluster's topology in etcd (vtgate's ``--topo-*`` flags)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from vsmux.cli import sharing, simulated, tls
from vsmux.cli.args import cell_list, parse_hostport, positive_float, positive_int
from vsmux.core.admission import OPTIONS as ADMISSION_OPTIONS
from vsmux.core.limits import OPTIONS as LIMIT_OPTIONS
from vsmux.core.ratelimit import OPTION as RATE_OPTION
from vsmux.core.settings import GatewaySettings
from vsmux.topology import Topology, read_topology

if TYPE_CHECKING:
    from vsmux.server.etcd_topology import EtcdTopoConfig

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topology", type=Path, help="topology TOML file (or the --topo-* flags below)"
    )
    parser.add_argument(
        "--listen", type=parse_hostport, default=("127.0.0.1", 15991), metavar="HOST:PORT"
    )
    parser.add_argument(
        "--metrics", type=parse_hostport, metavar="HOST:PORT", help="serve Prometheus metrics"
    )
    parser.add_argument(
        "--cell", help="the gateway's own cell (default: the topology file's; needed with etcd2)"
    )
    _add_topo_arguments(parser)
    parser.add_argument(
        "--liveness-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="end a stream that saw no event at all for this long (default 600)",
    )
    parser.add_argument(
        "--max-response-bytes",
        type=int,
        metavar="BYTES",
        help="largest VStream response sent; larger units are split (default 2 MiB)",
    )
    parser.add_argument(
        "--workload-rate",
        type=float,
        default=0.0,
        metavar="TPS",
        help="transactions per second written to simulated keyspaces (default none)",
    )
    parser.add_argument(
        "--connect-timeout", type=positive_float, default=10.0, metavar="SECONDS", help="to tablets"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    simulated.add_arguments(parser)
    tls.add_server_tls_arguments(parser, "the client port (VStream, Execute, health, reflection)")
    tls.add_tablet_tls_arguments(parser)
    _add_auth_arguments(parser)
    _add_failover_arguments(parser)
    sharing.add_arguments(parser)
    limits = parser.add_argument_group(
        "request limits", "checked before any work is done; over a limit, the call fails"
    )
    defaults = GatewaySettings()
    for field, option in (LIMIT_OPTIONS | ADMISSION_OPTIONS).items():
        metavar, text = _LIMIT_HELP[field]
        default = getattr(defaults, field)
        limits.add_argument(
            option,
            option.replace("-", "_").replace("__", "--", 1),
            dest=field,
            type=positive_int,
            metavar=metavar,
            help=f"{text} (default {'no limit' if default is None else default})",
        )
    limits.add_argument(
        RATE_OPTION,
        RATE_OPTION.replace("-", "_").replace("__", "--", 1),
        dest="max_new_streams_per_second",
        type=positive_float,
        metavar="RATE",
        help="new VStream calls the gateway starts per second, with a burst of one "
        "second's worth; more are RESOURCE_EXHAUSTED (default no limit)",
    )


def _add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    """vtgate's --grpc_auth_* options and the access file (either spelling of each)."""
    group = parser.add_argument_group(
        "authentication and access",
        "who may call VStream and Execute, and what they may read (health and "
        "reflection stay open); both spellings work: --grpc_auth_mode, --grpc-auth-mode",
    )
    for name, kwargs in (
        (
            "grpc_auth_mode",
            {
                "choices": ["static", "mtls"],
                "help": "static: gRPC metadata username/password checked against the password "
                "file; mtls: the client certificate's subject must contain an allowed "
                "substring, the caller is its common name (needs --grpc_ca)",
            },
        ),
        (
            "grpc_auth_static_password_file",
            {
                "type": Path,
                "metavar": "FILE",
                "help": "vtgate's JSON list of {Username, Password} objects",
            },
        ),
        (
            "grpc_auth_mtls_allowed_substrings",
            {
                "metavar": "A:B",
                "default": "",
                "help": "colon-separated; a certificate whose subject contains one is "
                "admitted (e.g. CN=debezium:OU=cdc)",
            },
        ),
        (
            "access_file",
            {
                "type": Path,
                "metavar": "FILE",
                "help": "TOML: the keyspaces (and tables) each user may stream and whether it "
                "sees metadata; without it every authenticated user reads everything",
            },
        ),
    ):
        group.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name, **kwargs)


def _add_failover_arguments(parser: argparse.ArgumentParser) -> None:
    """The failover buffer of PRIMARY streams (GatewaySettings.failover_*)."""
    defaults = GatewaySettings()
    group = parser.add_argument_group(
        "failover buffer",
        "a PRIMARY stream whose primary fails over waits for the new one instead of "
        "spending a retry (vtgate's --buffer_* flags, for queries)",
    )
    group.add_argument(
        "--failover-buffer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="buffer PRIMARY streams during a failover (default on)",
    )
    for option, field, text in (
        ("--failover-window", "failover_window", "longest one stream waits"),
        ("--failover-max-duration", "failover_max_duration", "longest one failover is buffered"),
        (
            "--failover-min-time-between",
            "failover_min_time_between",
            "no new buffering this soon after the last one ended or a reparent was seen",
        ),
    ):
        group.add_argument(
            option,
            dest=field,
            type=positive_float,
            default=None,
            metavar="SECONDS",
            help=f"{text} (default {getattr(defaults, field):g})",
        )
    group.add_argument(
        "--failover-dry-run",
        action="store_true",
        default=None,
        help="count and log what would be buffered, but let every stream retry at once",
    )


def _add_topo_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Vitess topology server",
        "read keyspaces, shards and tablets from a Vitess cluster's etcd and follow its "
        "changes, instead of --topology (vtgate's flags; either spelling works)",
    )
    for name, metavar, text, default in (
        ("topo_implementation", "etcd2", "the topology server's kind: etcd2", None),
        (
            "topo_global_server_address",
            "HOST:PORT",
            "the global topology's etcd (one address)",
            None,
        ),
        ("topo_global_root", "PATH", "the global topology's root", "/vitess/global"),
    ):
        group.add_argument(
            f"--{name.replace('_', '-')}",
            f"--{name}",
            dest=name,
            metavar=metavar,
            default=default,
            help=f"{text} (default {default})" if default else text,
        )
    group.add_argument(
        "--cells-to-watch",
        "--cells_to_watch",
        dest="cells_to_watch",
        type=cell_list,
        metavar="CELL,CELL",
        help="cells whose tablets the gateway knows, each read under its own CellInfo "
        "(default: --cell only; --cell is always read: its SrvKeyspace routes)",
    )


def _etcd_config(args: argparse.Namespace) -> tuple[EtcdTopoConfig | None, str | None]:
    """The etcd topology's config from the flags, or an error; (None, None) without them."""
    from vsmux.server.etcd_topology import EtcdTopoConfig

    given = args.topo_implementation is not None or args.topo_global_server_address is not None
    if not given:
        if args.topology is None:
            return None, "give --topology FILE, or --topo-implementation etcd2 and its flags"
        if args.cells_to_watch is not None:
            return None, (
                "--cells-to-watch is for --topo-implementation etcd2: a topology file "
                "lists the tablets of every cell"
            )
        return None, None
    if args.topology is not None:
        return None, "give either --topology or the --topo-* flags, not both"
    if args.topo_implementation != "etcd2":
        return None, (
            f"--topo-implementation {args.topo_implementation!r} is not supported: only etcd2"
        )
    if not args.topo_global_server_address:
        return None, "--topo-implementation etcd2 needs --topo-global-server-address HOST:PORT"
    if not args.cell:
        return None, "--topo-implementation etcd2 needs --cell (the cell whose tablets to use)"
    config = EtcdTopoConfig(
        args.topo_global_server_address,
        args.topo_global_root,
        args.cell,
        cells_to_watch=args.cells_to_watch or (),
    )
    return config, None


def _failover_settings(args: argparse.Namespace, topology: Topology) -> dict[str, object]:
    """The topology file's ``[failover_buffer]``, then the flags given, over the defaults."""
    given = {
        "failover_buffer_enabled": args.failover_buffer,
        "failover_window": args.failover_window,
        "failover_max_duration": args.failover_max_duration,
        "failover_min_time_between": args.failover_min_time_between,
        "failover_dry_run": args.failover_dry_run,
    }
    settings: dict[str, object] = dict(topology.failover_buffer)
    settings.update({name: value for name, value in given.items() if value is not None})
    return settings


# Help for each request limit (vsmux.core.limits; defaults in GatewaySettings).
_LIMIT_HELP = {
    "max_request_bytes": ("BYTES", "largest request message; more is RESOURCE_EXHAUSTED"),
    "max_request_fields": ("N", "most fields and list elements in a request"),
    "max_name_bytes": ("BYTES", "longest keyspace or table name"),
    "max_shard_name_bytes": ("BYTES", "longest shard name"),
    "max_pattern_bytes": ("BYTES", "longest /regex selector or LIKE pattern"),
    "max_gtid_bytes": ("BYTES", "longest position (gtid) string"),
    "max_shard_gtids": ("N", "most entries in vgtid.shard_gtids"),
    "max_filter_rules": ("N", "most filter rules"),
    "max_filter_sql_bytes": ("BYTES", "longest filter SQL of one rule"),
    "max_streams_per_connection": ("N", "VStream calls one client connection may run at once"),
    "max_streaming_connections": ("N", "client connections that may stream at once"),
    "max_streams": ("N", "VStream calls the gateway runs at once"),
    "max_streams_per_user": (
        "N",
        "VStream calls one authenticated user runs at once (needs --grpc_auth_mode)",
    ),
}


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vsmux.server.auth import SecurityConfigError, load_security
    from vsmux.server.standalone import ServeConfig, serve_until_signal

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    etcd, problem = _etcd_config(args)
    if problem is not None:
        print(f"vsmux serve: {problem}", file=sys.stderr)
        return 2
    if etcd is not None:
        topology = Topology(cell=args.cell)
    else:
        try:
            topology = read_topology(args.topology)
        except Exception as exc:  # the loader's own errors too: report, do not crash
            print(f"vsmux serve: cannot load {args.topology}: {exc}", file=sys.stderr)
            return 2
    if args.max_response_bytes is not None and args.max_response_bytes < 1024:
        print("vsmux serve: --max-response-bytes must be at least 1024", file=sys.stderr)
        return 2
    settings = GatewaySettings(cell=args.cell or topology.cell)
    if args.liveness_timeout is not None:
        settings = replace(settings, liveness_timeout=args.liveness_timeout)
    if args.max_response_bytes is not None:
        settings = replace(settings, max_response_bytes=args.max_response_bytes)
    limits = {
        f: getattr(args, f)
        for f in LIMIT_OPTIONS | ADMISSION_OPTIONS
        if getattr(args, f) is not None
    }
    settings = replace(
        settings, **limits, max_new_streams_per_second=args.max_new_streams_per_second
    )
    settings = replace(settings, **_failover_settings(args, topology))  # type: ignore[arg-type]
    settings = replace(settings, **sharing.settings_from(args))  # type: ignore[arg-type]
    try:
        server_tls = tls.server_tls(args)
        tablet_tls = tls.client_tls(tls.tablet_files(args))
    except (tls.TlsFileError, ValueError) as exc:
        print(f"vsmux serve: {exc}", file=sys.stderr)
        return 2
    try:
        security = load_security(
            args.grpc_auth_mode or "",
            password_file=args.grpc_auth_static_password_file,
            mtls_allowed_substrings=args.grpc_auth_mtls_allowed_substrings,
            access_file=args.access_file,
            client_certificates=server_tls is not None and server_tls.mutual,
        )
    except SecurityConfigError as exc:
        print(f"vsmux serve: {exc}", file=sys.stderr)
        return 2
    if settings.max_streams_per_user is not None and security.authenticator is None:
        logging.getLogger("vsmux.server").warning(
            "--max-streams-per-user counts authenticated users only: without "
            "--grpc_auth_mode it limits no one"
        )
    config = ServeConfig(
        topology=topology,
        host=args.listen[0],
        port=args.listen[1],
        metrics=args.metrics,
        settings=settings,
        tables=topology.table_lists(),
        workload_rate=args.workload_rate,
        connect_timeout=args.connect_timeout,
        simulated=simulated.build_options(args),
        tls=server_tls,
        tablet_tls=tablet_tls,
        security=security,
        etcd=etcd,
    )
    if server_tls is None:
        hint = "try: grpcurl -plaintext {address} list"
    elif server_tls.mutual:
        hint = "try: grpcurl -cacert CA.pem -cert CLIENT.pem -key CLIENT-KEY.pem {address} list"
    else:
        hint = "try: grpcurl -cacert CA.pem {address} list"
    banner = ["vsmux gateway listening on {address}", hint]
    result: int = trio.run(lambda: serve_until_signal(config, ready=banner))
    return result
