"""How many streams a simulated tablet serves: open now, and opened in all.

Each :class:`~vsmux.sources._simulated.tablet.SimulatedTablet` counts its
VStreams (``tablet.vstreams``) and its StreamHealth streams
(``tablet.health.streams``), whether they are read in process or over gRPC
(:class:`vsmux.transport.SimulatedQueryService` runs the same generators).
A stream counts as open from when the tablet starts serving it (a refused
one, e.g. by a tablet that is down, never does) until it ends, fails or is
closed. Tests read them, per tablet or summed by
:meth:`~vsmux.sources._simulated.cluster.SimulatedCluster.stream_counts`, to
see what a gateway costs the tablets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["StreamCount", "StreamCounts"]


@dataclass(slots=True)
class StreamCount:
    """Streams of one kind: open now, and opened since the tablet started."""

    open: int = 0
    opened: int = 0

    @contextmanager
    def counting(self) -> Iterator[None]:
        """Count one stream as open for the ``with`` block."""
        self.open += 1
        self.opened += 1
        try:
            yield
        finally:
            self.open -= 1


@dataclass(frozen=True, slots=True)
class StreamCounts:
    """A snapshot of one tablet's stream counts (or a sum of several); ``+`` adds."""

    vstreams: int = 0  # VStreams open
    vstreams_opened: int = 0
    health: int = 0  # StreamHealth streams open
    health_opened: int = 0

    def __add__(self, other: StreamCounts) -> StreamCounts:
        return StreamCounts(
            self.vstreams + other.vstreams,
            self.vstreams_opened + other.vstreams_opened,
            self.health + other.health,
            self.health_opened + other.health_opened,
        )
