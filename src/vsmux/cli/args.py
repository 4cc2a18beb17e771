"""Argument types shared by the ``vsmux`` subcommands."""

from __future__ import annotations

import argparse
import re

from vsmux.topology import AddressError, split_address

__all__ = [
    "SHARD_OPTIONS",
    "attach_shard_values",
    "cell_list",
    "parse_hostport",
    "positive_float",
    "positive_int",
]

#: Options whose value may start with "-": shard names (-80) and lists (-80,80-).
SHARD_OPTIONS = frozenset(("--shard", "--shards"))
# Hex digits: the first shard name after its leading "-".
_HEX = re.compile(r"[0-9a-fA-F]*")
# One shard name: hex digits with at most one "-" (80-c0, 80-, -80, 0). A "-"
# or the end is the only way out of each run of digits, so a near miss fails
# after one pass (a pattern of whole lists, a quantified group of runs of
# digits, took time exponential in the number of names to refuse one).
_SHARD_NAME = re.compile(r"[0-9a-fA-F]*(?:-[0-9a-fA-F]*)?")


def _shard_like(value: str) -> bool:
    """Whether ``value`` is a shard name or a comma-separated list of them, starting with "-"."""
    first, *rest = value.split(",")
    return (
        first.startswith("-")
        and _HEX.fullmatch(first, 1) is not None
        and all(_SHARD_NAME.fullmatch(name) is not None for name in rest)
    )


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
        if arg in SHARD_OPTIONS and i + 1 < len(argv) and _shard_like(argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def cell_list(text: str) -> tuple[str, ...]:
    """``zone1,zone2`` as cell names, each once; empty entries are skipped, as vtgate does.

    A name with "/" or whitespace is refused: it would name a different
    path in the topology server.
    """
    cells = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not cells:
        raise argparse.ArgumentTypeError("expected one or more cell names, comma-separated")
    for cell in cells:
        if "/" in cell or any(ch.isspace() for ch in cell):
            raise argparse.ArgumentTypeError(f"{cell!r} is not a cell name")
    return cells


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:N`` too); an empty host means 127.0.0.1."""
    try:
        return split_address(text, default_host="127.0.0.1")
    except AddressError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}") from None


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
