"""Letting the system take back the pages of CPython's empty small-object pools.

After a burst of clients, CPython's small-object allocator keeps every 1 MiB
arena in which some long-lived object still lives, and with it the arena's
empty 16 KiB pools: that was most of the memory a gateway kept after its
clients left. :mod:`vsmux.server._pools` (a small C extension built at
install time) watches the arenas taken from :func:`track_arenas` on, and
:func:`release_empty_pools` gives the system every page of their empty pools
but the first (which holds the pool's header). A released pool is set up
afresh when it is used again, so nothing changes for the program but RSS.
:func:`release_unused_pages` does the same for the pages of pools still in
use that hold no block in use (the free blocks on them leave the pool's
free list until the pool is set up afresh).

The extension checks that it knows the allocator's layout before it does
anything (CPython 3.11-3.13, pymalloc without debug hooks). Where it is not
built, refuses, or ``VSMUX_KEEP_POOLS=1`` is set, both functions do nothing.
"""

from __future__ import annotations

from vsmux.wire.accel import optional_extension

__all__ = [
    "DISABLE_ENV",
    "arenas_tracked",
    "release_empty_pools",
    "release_unused_pages",
    "track_arenas",
]

#: Environment variable that, set to anything but "" or "0", keeps pools as CPython does.
DISABLE_ENV = "VSMUX_KEEP_POOLS"

_native = optional_extension("vsmux.server._pools", DISABLE_ENV)
_tracking = False


def track_arenas() -> bool:
    """Start watching the allocator's arenas; True if empty pools can be released.

    Call it once, early: arenas taken before are never released. Idempotent.
    """
    global _tracking
    if _native is not None and not _tracking:
        _tracking = _native.track()
    return _tracking


def release_empty_pools() -> int:
    """Give the system the pages of empty pools; how many pools did (0 when off).

    Takes a few milliseconds for a few hundred arenas and blocks the loop
    meanwhile (no await). Run it after the cyclic collector, which empties
    the most pools.
    """
    if not _tracking or _native is None:
        return 0
    released: int = _native.release()
    return released


def release_unused_pages() -> int:
    """Give the system the pages of pools in use that hold no block in use; how many.

    A pool keeps its first page, and every page a block in use touches. Like
    :func:`release_empty_pools`: blocks the loop for a few milliseconds, best
    after the cyclic collector, 0 when off.
    """
    if not _tracking or _native is None:
        return 0
    released: int = _native.release_used()
    return released


def arenas_tracked() -> int:
    """Arenas watched and still held by the allocator (0 when off)."""
    if not _tracking or _native is None:
        return 0
    held: int = _native.arenas()
    return held
