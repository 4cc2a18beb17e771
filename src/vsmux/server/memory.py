"""Giving a finished session's memory back to the operating system.

A gateway held on to memory after its clients left in five ways
(``benchmarks/bench_load.py``; BENCHMARKS.md has the numbers):

1. **grpclib keeps finished calls.** Its server holds each connection's
   handler, and each handler its call tasks, until ten more connections
   (or calls on that connection) arrive; only then does it drop the finished
   ones. A finished VStream task holds the exception it ended with, whose
   traceback holds the session's frames and, through them, the last batches
   of events it was working on. After 50 clients left, all 50 sessions were
   still reachable this way: 140k objects. The transport makes it let go
   (:func:`vsmux.transport.drop_finished_calls`).
2. **Cycles wait for a full collection.** Exceptions and their tracebacks
   form reference cycles; once dropped they are freed only by a full pass of
   the cyclic collector, which an idle process may not run for a long time.
3. **Timers that can no longer fire, streams and connections no one
   uses.** Trio's deadline heap and trio-asyncio's timer heap delete
   lazily (:mod:`vsmux.server.stale_timers`), h2 keeps a pooled tablet
   connection's closed streams until the next one opens
   (``TabletChannels.forget_closed_streams``), and the first connection to
   each tablet stays open after its last stream
   (``TabletChannels.close_idle`` closes it).
4. **Freed memory stays in the heap.** glibc keeps freed chunks for reuse
   and returns only the top of the heap; ``malloc_trim(0)`` returns every
   free page.
5. **Empty pools stay in arenas.** CPython's small-object allocator keeps a
   1 MiB arena while any object in it lives, so long-lived objects created
   during a burst (tablet connections, metrics series, caches, the item
   arrays of containers that grew) keep their arenas resident, empty pools
   and all. :mod:`vsmux.server.pools` gives the system all but the first
   page of each empty pool, and the pages of pools in use that hold no
   live block.

:class:`ReleasePolicy` decides when (pure, tested with a fake clock):
after sessions have ended and the number ended has been still for
``settle`` seconds (the leaving burst is over, and what lingers after the
last session, shared feeds and health watches, has closed: see
:meth:`ReleasePolicy.after_linger`), at most once per
``min_interval``, and within ``max_wait`` of the first unreleased end even
while sessions keep ending. :func:`release_memory` does the five steps,
and :func:`return_memory` runs the policy in the gateway's nursery.

A release costs a full collection (tens of milliseconds with hundreds of
sessions alive) during which the loop does nothing else; the policy's
minimum interval bounds how often that pause can happen.

What is not returned: the objects that live on and the pools that hold
them, and the first page of every empty pool in their arenas (BENCHMARKS.md,
"Memory after a burst").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from vsmux.core.metrics import Metrics
from vsmux.core.positions import forget_read_gtids
from vsmux.server.pools import release_empty_pools, release_unused_pages
from vsmux.server.stale_timers import prune_trio_deadlines
from vsmux.transport import (
    SESSIONS_ENDED,
    TabletChannels,
    drop_finished_calls,
    forget_cancelled_asyncio_timers,
)

__all__ = [
    "MEMORY_RELEASES",
    "Release",
    "ReleasePolicy",
    "release_memory",
    "return_memory",
    "trim_heap",
]

log = logging.getLogger("vsmux.server")

#: Metrics.gateway counter of releases done.
MEMORY_RELEASES = "memory_releases"

#: How often the session count is looked at.
POLL_SECONDS = 1.0

#: How long the count of ended sessions must be still before a release.
SETTLE_SECONDS = 2.0


@dataclass
class ReleasePolicy:
    """When to release memory, from the count of sessions ended so far.

    ``observe(now, ended)`` once per poll; ``due(now)`` says whether to
    release now; ``released(now)`` after doing it.
    """

    #: The count must have been unchanged this long (clients leave in bursts).
    settle: float = SETTLE_SECONDS
    #: At least this long between two releases (each costs a full GC pass).
    min_interval: float = 30.0
    #: Release at most this long after the first unreleased end, even if
    #: sessions keep ending (busy gateways get a release now and then).
    max_wait: float = 30.0

    @classmethod
    def after_linger(cls, linger: float) -> ReleasePolicy:
        """The policy for a gateway whose feeds and health watches stay ``linger`` s.

        What they hold is freed only when they close, and a release frees
        what is garbage by then; so the count of ended sessions must have
        been still for the linger and the usual settle time after it.
        """
        return cls(settle=linger + SETTLE_SECONDS)

    _ended: int = field(default=0, init=False)
    _ended_at_release: int = field(default=0, init=False)
    _changed_at: float = field(default=-math.inf, init=False)
    _pending_since: float | None = field(default=None, init=False)
    _released_at: float = field(default=-math.inf, init=False)

    def observe(self, now: float, ended: int) -> None:
        if ended != self._ended:
            self._ended = ended
            self._changed_at = now
        if ended > self._ended_at_release and self._pending_since is None:
            self._pending_since = now

    def due(self, now: float) -> bool:
        if self._pending_since is None or now - self._released_at < self.min_interval:
            return False
        return now - self._changed_at >= self.settle or now - self._pending_since >= self.max_wait

    def released(self, now: float) -> None:
        self._released_at = now
        self._ended_at_release = self._ended
        self._pending_since = None


@dataclass(frozen=True, slots=True)
class Release:
    """What one release did, for the log."""

    handlers_dropped: int
    #: Closed HTTP/2 streams the tablet connections forgot.
    streams_dropped: int
    #: Tablet connections closed because no stream used them.
    connections_closed: int
    #: Stale Trio deadlines and cancelled asyncio timers dropped.
    timers_dropped: int
    objects_collected: int
    trimmed: bool
    #: Empty allocator pools whose pages went back to the system.
    pools_released: int
    #: Pages of allocator pools in use that went back (no live block on them).
    pages_released: int
    seconds: float


def _malloc_trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: nothing to trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Return every free page of the C heap to the system (glibc); False if unsupported."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def release_memory(servers: list[Any], tablet_channels: Sequence[TabletChannels] = ()) -> Release:
    """Drop finished calls, closed streams, idle tablet connections and stale timers; collect,
    trim, release pools.

    Blocks the loop while it runs. Call it from the Trio thread (the stale
    Trio deadlines are the running run's). ``servers`` are what
    :func:`vsmux.transport.drop_finished_calls` takes; ``tablet_channels``
    the pools whose connections forget their closed HTTP/2 streams and
    close when no stream uses them.
    """
    started = time.perf_counter()
    dropped = sum(drop_finished_calls(server) for server in servers)
    streams = sum(channels.forget_closed_streams() for channels in tablet_channels)
    closed = sum(channels.close_idle() for channels in tablet_channels)
    forget_read_gtids()  # small objects of the burst, kept only to save reads
    timers = prune_trio_deadlines() + forget_cancelled_asyncio_timers()
    collected = gc.collect()
    trimmed = trim_heap()
    pools = release_empty_pools()
    pages = release_unused_pages()
    return Release(
        dropped,
        streams,
        closed,
        timers,
        collected,
        trimmed,
        pools,
        pages,
        time.perf_counter() - started,
    )


async def return_memory(
    servers: list[Any],
    metrics: Metrics,
    policy: ReleasePolicy | None = None,
    *,
    poll: float = POLL_SECONDS,
    tablet_channels: Sequence[TabletChannels] = (),
) -> None:
    """Release memory as ``policy`` decides after sessions end; runs until cancelled.

    ``servers`` and ``tablet_channels`` as :func:`release_memory` takes them.
    """
    policy = policy if policy is not None else ReleasePolicy()
    gauges = metrics.gateway
    while True:
        await trio.sleep(poll)
        now = trio.current_time()
        policy.observe(now, int(gauges[SESSIONS_ENDED]))
        if not policy.due(now):
            continue
        done = release_memory(servers, tablet_channels)
        policy.released(trio.current_time())
        gauges[MEMORY_RELEASES] += 1
        log.debug(
            "memory released: %d finished connections dropped, %d closed tablet streams "
            "and %d stale timers forgotten, %d idle tablet connections closed, "
            "%d objects collected, heap %s, "
            "%d empty pools and %d unused pages of pools in use released, %.1f ms",
            done.handlers_dropped,
            done.streams_dropped,
            done.timers_dropped,
            done.connections_closed,
            done.objects_collected,
            "trimmed" if done.trimmed else "not trimmable",
            done.pools_released,
            done.pages_released,
            done.seconds * 1000,
        )
