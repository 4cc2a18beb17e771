"""Garbage-collector settings for a long-running gateway process.

CPython's cyclic collector runs a young-generation pass every 700 net
allocations of container objects and, now and then, a full pass over every
tracked object. A gateway allocates containers per batch and per unit at a
high rate, and it imports large libraries (protobuf descriptors, grpclib, h2)
whose objects live as long as the process. Measured at 4 tablets and ~400k
events/s, the collector took ~6% of the gateway's CPU, most of it in full
passes over those start-up objects (BENCHMARKS.md).

:func:`settle_gc`, called once the gateway is up, collects once, freezes
what start-up left (full passes skip it from then on) and raises the
young-generation threshold. Reference counting still frees almost
everything; only cyclic garbage waits a little longer to be found.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_gc"]

#: Net container allocations between young-generation passes (CPython's default is 700).
YOUNG_THRESHOLD = 10_000


def settle_gc() -> int:
    """Freeze start-up objects and space out collections; the number of objects frozen."""
    gc.collect()  # start-up garbage goes now instead of being frozen
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
