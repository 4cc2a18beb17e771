"""Argument types shared by the ``vsmux`` subcommands."""

from __future__ import annotations

import argparse
import re

__all__ = [
    "SHARD_OPTIONS",
    "attach_shard_values",
    "parse_hostport",
    "positive_float",
    "positive_int",
]

#: Options whose value may start with "-": shard names (-80) and lists (-80,80-).
SHARD_OPTIONS = frozenset(("--shard", "--shards"))
# A shard name or a comma-separated list of them, starting with "-".
_SHARD_LIKE = re.compile(r"^-[0-9a-fA-F]*(,[0-9a-fA-F]*-?[0-9a-fA-F]*)*$")


def attach_shard_values(argv: list[str]) -> list[str]:
    """``argv`` with ``--shard -80`` written as ``--shard=-80`` (likewise ``--shards``).

    argparse reads a separate value starting with "-" as an option and stops
    with "expected one argument"; the ``=`` form always works, so shard
    options get it before parsing. Everything after ``--`` is left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out += argv[i:]
            break
        if arg in SHARD_OPTIONS and i + 1 < len(argv) and _SHARD_LIKE.match(argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:N`` too); an empty host means 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value
