"""Wall-clock time for simulated tablets, driven by Trio's clock.

Event timestamps must look like real epoch times, yet tests run under
``trio.testing.MockClock``. :class:`SimClock` maps Trio time onto an epoch
base fixed on first use, so a mock clock's jumps show up in timestamps and a
real run gets real wall-clock times. Outside a Trio run (synchronous setup
code) it returns the time last seen, or the base itself.
"""

from __future__ import annotations

import time

import trio

__all__ = ["SimClock"]


class SimClock:
    """``now()`` in epoch seconds; ``base`` fixes the epoch at Trio time 0 if given."""

    def __init__(self, base: float | None = None) -> None:
        self._base = base
        self._last: float | None = None

    def now(self) -> float:
        try:
            trio_now = trio.current_time()
        except RuntimeError:
            if self._last is not None:
                return self._last
            return self._base if self._base is not None else time.time()
        if self._base is None:
            self._base = time.time() - trio_now
        self._last = self._base + trio_now
        return self._last

    def now_ns(self) -> int:
        return int(self.now() * 1e9)

    def seconds(self) -> int:
        return int(self.now())
