"""TLS options of the ``vsmux`` commands, with vtgate's names.

A server port (``vsmux serve``'s client port, ``vsmux cluster`` and
``fake-tablet``'s tablets) takes ``--grpc_cert`` and ``--grpc_key``, and with
``--grpc_ca`` requires client certificates signed by that CA (mutual TLS).
``vsmux serve`` reaches tablets over TLS with ``--tablet_grpc_cert``,
``--tablet_grpc_key``, ``--tablet_grpc_ca`` and ``--tablet_grpc_server_name``
(any of them turns TLS on, as in vtgate). Every option is accepted with
underscores and with dashes (``--grpc-cert``), as current vtgate accepts both.

The files are read when the options are turned into TLS settings
(:func:`server_tls`, :func:`client_tls`), before anything listens, so a
missing or unusable file stops the command with a message naming the option
and the file (:class:`~vsmux.transport.TlsFileError`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vsmux.transport import ClientTls, ServerTls, TlsFileError, TlsFiles

__all__ = [
    "TlsFileError",
    "add_server_tls_arguments",
    "add_tablet_tls_arguments",
    "client_tls",
    "server_tls",
    "tablet_files",
]


def _add(group: Any, name: str, metavar: str, text: str) -> None:
    group.add_argument(
        f"--{name}",
        f"--{name.replace('_', '-')}",
        dest=name,
        type=Path if metavar == "FILE" else str,
        metavar=metavar,
        help=text,
    )


def add_server_tls_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--grpc_cert``, ``--grpc_key`` and ``--grpc_ca`` for the port(s) ``what`` names."""
    group = parser.add_argument_group(
        "TLS",
        f"serve {what} over TLS (both spellings work: --grpc_cert, --grpc-cert); "
        "SIGHUP reloads the files for new connections",
    )
    _add(group, "grpc_cert", "FILE", "server certificate (PEM, with any intermediates)")
    _add(group, "grpc_key", "FILE", "the certificate's private key (PEM)")
    _add(
        group,
        "grpc_ca",
        "FILE",
        "CA certificates (PEM): clients must present a certificate signed by one (mutual TLS)",
    )


def add_tablet_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tablet_grpc_cert``, ``_key``, ``_ca`` and ``_server_name``: TLS to tablets."""
    group = parser.add_argument_group(
        "TLS to tablets", "any of these connects to every tablet over TLS (either spelling works)"
    )
    _add(group, "tablet_grpc_cert", "FILE", "client certificate to present to tablets (PEM)")
    _add(group, "tablet_grpc_key", "FILE", "its private key (PEM)")
    _add(group, "tablet_grpc_ca", "FILE", "CA to verify tablets by (default: the system's)")
    _add(
        group,
        "tablet_grpc_server_name",
        "NAME",
        "name tablet certificates must carry (default: each tablet's host)",
    )


def server_tls(args: argparse.Namespace) -> ServerTls | None:
    """The server TLS the ``--grpc_*`` options ask for, files loaded; None without any.

    Raises :class:`~vsmux.transport.TlsFileError` for a file that cannot be
    used, ValueError for options that do not go together.
    """
    cert, key, ca = args.grpc_cert, args.grpc_key, args.grpc_ca
    if cert is None and key is None and ca is None:
        return None
    if cert is None or key is None:
        raise ValueError("TLS needs both --grpc_cert and --grpc_key")
    return ServerTls(TlsFiles(cert, key, ca, option_prefix="--grpc_"))


def client_tls(files: TlsFiles) -> ClientTls | None:
    """The client TLS ``files`` ask for, loaded; None when none of them is given.

    Raises :class:`~vsmux.transport.TlsFileError` for a file that cannot be
    used.
    """
    return ClientTls.load(files) if files.enabled else None


def tablet_files(args: argparse.Namespace) -> TlsFiles:
    """The ``--tablet_grpc_*`` options; ValueError if a certificate comes without its key."""
    return TlsFiles(
        args.tablet_grpc_cert,
        args.tablet_grpc_key,
        args.tablet_grpc_ca,
        args.tablet_grpc_server_name,
        option_prefix="--tablet_grpc_",
    )
