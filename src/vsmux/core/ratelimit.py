"""A bound on new VStream calls per second: a token bucket, pure.

``vsmux serve --max-new-streams-per-second RATE`` refills a bucket of
``max(1, RATE)`` tokens at RATE tokens a second; each new VStream call takes
one, and a call that finds the bucket empty is refused at once with
RESOURCE_EXHAUSTED (it is not queued: a client that reconnects in a tight
loop must not build up a backlog of sessions). A burst of up to one
second's worth is let through; past that, calls start at RATE.

The caller passes the time (``trio.current_time()`` in the server), so the
rule is tested without a clock.
"""

from __future__ import annotations

from vsmux.core.admission import LimitExceeded

__all__ = ["OPTION", "TokenBucket"]

#: The ``vsmux serve`` option that sets the rate.
OPTION = "--max-new-streams-per-second"


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` (default ``max(1, rate)``) saved up."""

    def __init__(self, rate: float, burst: float | None = None, *, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._at = now

    def take(self, now: float) -> None:
        """Take one token at time ``now``, or raise RESOURCE_EXHAUSTED (LimitExceeded)."""
        elapsed = max(0.0, now - self._at)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._at = max(self._at, now)
        if self._tokens < 1.0:
            wait = (1.0 - self._tokens) / self.rate
            raise LimitExceeded(
                "max_new_streams_per_second",
                f"the gateway starts at most {self.rate:g} new VStream calls a second "
                f"({OPTION}); retry in {wait:.2f}s",
            )
        self._tokens -= 1.0
