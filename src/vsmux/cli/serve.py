"""`vsmux serve`. Not built yet."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("vsmux serve: not built yet", file=sys.stderr)
    return 2
