"""When ``vsmux tail`` reconnects, and how long it waits first.

Pure and clock-free: the caller sleeps for what :meth:`Backoff.next_delay`
returns.
"""

from __future__ import annotations

import math
import random

from vsmux.errors import Code

__all__ = ["BACKOFF_BASE_SECONDS", "BACKOFF_CAP_SECONDS", "Backoff", "is_retryable"]

# First wait after a failure; doubles per consecutive failure.
BACKOFF_BASE_SECONDS = 0.5
# Longest wait: a gateway back after a restart is picked up within this.
BACKOFF_CAP_SECONDS = 30.0

# UNAVAILABLE is what a gateway (or grpclib, for a dropped or refused
# connection) reports for anything that may work on the next try. Everything
# else is the server saying the request itself is wrong (INVALID_ARGUMENT,
# NOT_FOUND, PERMISSION_DENIED, ...): retrying would only repeat the error.
_RETRYABLE = frozenset({Code.UNAVAILABLE})


def is_retryable(code: Code) -> bool:
    """Whether a stream that failed with ``code`` should be reconnected."""
    return code in _RETRYABLE


class Backoff:
    """Jittered exponential backoff: ``min(cap, base * 2**n)`` scaled by [0.5, 1)."""

    def __init__(
        self,
        base: float = BACKOFF_BASE_SECONDS,
        cap: float = BACKOFF_CAP_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng if rng is not None else random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        ceiling = min(self.cap, math.ldexp(self.base, min(self.failures, 64)))
        self.failures += 1
        # Half-to-full jitter: spreads clients that lost the same gateway at
        # the same moment, without ever retrying immediately.
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Forget past failures (the stream made progress)."""
        self.failures = 0
