"""Argument types shared by the ``vsmux`` subcommands."""

from __future__ import annotations

import argparse

__all__ = ["parse_hostport", "positive_float"]


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
