"""Skew waits for ``minimize_skew``, on trio Events.

Streams report their event times (from terminators and tablet heartbeats)
with :meth:`SkewGate.observe`; a stream about to send a unit calls
:meth:`SkewGate.wait_turn`, which returns at once unless the stream is more
than ``max_skew_seconds`` ahead of the slowest (see :mod:`vsmux.core.skew`).
A waiting stream wakes on every report and re-checks. Each wait counts once
in ``VStreamEventsDelayedBySkewAlignment``; a wait longer than
``skew_timeout`` fails the request with CANCELED.
"""

from __future__ import annotations

import trio

from vsmux.core.metrics import Labels, Metrics
from vsmux.core.positions import ShardKey
from vsmux.core.settings import GatewaySettings
from vsmux.core.skew import SkewTracker, event_time
from vsmux.errors import Code, VStreamError
from vsmux.wire import Frame

__all__ = ["SkewGate"]


class SkewGate:
    """Holds back shard streams that run too far ahead of the slowest one.

    The session makes one per request, and only when the client set
    ``minimize_skew`` (otherwise ``RequestContext.skew`` is None). Shard
    streamers report event times with :meth:`observe`, call :meth:`wait_turn`
    before queueing a unit, and :meth:`remove` themselves when they end so
    they hold nobody back. The rule is :class:`vsmux.core.skew.SkewTracker`'s;
    this class adds the waiting, on a trio Event replaced at each report.

    A wait longer than ``skew_timeout`` raises CANCELED naming the slowest
    shard, which fails the request. A cancelled :meth:`wait_turn` raises at
    once and leaves the gate as it found it.
    """

    def __init__(self, settings: GatewaySettings, metrics: Metrics) -> None:
        self._tracker = SkewTracker(settings.max_skew_seconds)
        self._timeout = settings.skew_timeout
        self._metrics = metrics
        self._changed = trio.Event()
        self._waiting = 0

    def observe(self, key: ShardKey, frame: Frame) -> None:
        """Note ``frame``'s time for ``key`` (frames without a timestamp are skipped)."""
        header = frame.header()
        if not header.timestamp:
            return
        now = trio.current_time()
        self._tracker.update(key, event_time(now, header.timestamp, header.current_time))
        self._wake()

    def remove(self, key: ShardKey) -> None:
        """``key`` stopped streaming: it no longer holds anyone back."""
        self._tracker.remove(key)
        self._wake()

    def _wake(self) -> None:
        if self._waiting:
            self._changed.set()
            self._changed = trio.Event()

    async def wait_turn(self, key: ShardKey, labels: Labels) -> None:
        """Wait while ``key`` is too far ahead. Cancellation: raises, nothing to undo."""
        if not self._tracker.must_wait(key):
            return
        self._metrics.add("VStreamEventsDelayedBySkewAlignment", labels)
        self._waiting += 1
        try:
            with trio.move_on_after(self._timeout) as scope:
                while self._tracker.must_wait(key):
                    await self._changed.wait()
        finally:
            self._waiting -= 1
        if scope.cancelled_caught:
            laggard = self._tracker.laggard()
            slowest = "/".join(laggard) if isinstance(laggard, tuple) else "unknown"
            raise VStreamError(
                Code.CANCELED,
                f"timed out while waiting for skew to reduce: {key[0]}/{key[1]} is "
                f"{self._tracker.ahead_by(key):.1f}s ahead of the slowest shard {slowest} "
                f"after {self._timeout:g}s; check that shard's tablet",
            )
