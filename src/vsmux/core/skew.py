"""Skew tracking for ``minimize_skew``.

Each shard stream has an "event time": the gateway's clock minus how far in
the past its latest event was committed (``current_time/1e9 - timestamp``, as
the tablet reports both). A stream must wait at its next terminator while its
event time is more than ``max_skew`` seconds ahead of the slowest stream's.

Unlike vtgate, whose laggard bookkeeping stalls every non-laggard once three
or more shards stream, the rule here is one comparison against the current
minimum: the slowest stream never waits, and a stream waits only as long as
it is too far ahead. Streams that have not reported an event yet take no part.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["SkewTracker", "event_time"]


def event_time(now: float, timestamp: int, current_time: int) -> float:
    """An event's time on the gateway's clock ``now`` (seconds)."""
    return now - (current_time / 1e9 - timestamp)


class SkewTracker:
    """Latest event time per stream, and who is too far ahead."""

    def __init__(self, max_skew: float) -> None:
        self.max_skew = max_skew
        self._times: dict[Hashable, float] = {}

    def update(self, stream: Hashable, when: float) -> None:
        self._times[stream] = when

    def remove(self, stream: Hashable) -> None:
        """``stream`` ended (journal, end of request): it no longer holds others back."""
        self._times.pop(stream, None)

    def ahead_by(self, stream: Hashable) -> float:
        """Seconds ``stream`` is ahead of the slowest stream (0 if unknown)."""
        when = self._times.get(stream)
        if when is None:
            return 0.0
        return when - min(self._times.values())

    def must_wait(self, stream: Hashable) -> bool:
        return self.ahead_by(stream) > self.max_skew

    def laggard(self) -> Hashable | None:
        """The slowest stream, if any stream has reported."""
        if not self._times:
            return None
        return min(self._times, key=self._times.__getitem__)
