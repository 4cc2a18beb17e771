"""What to do when a shard's tablet stream fails: retry, move on, or give up.

Pure and synchronous: the streamer reports each failure to its
:class:`ShardRetryPolicy` and gets back a :class:`RetryDecision` (what to do,
how long to wait first, and the error to report if it gives up). The policy
sleeps nowhere and reads no clock.

Classification (``docs/vitess.md`` §6.3), first match wins:

1. The tablet lacks the position: INVALID_ARGUMENT mentioning "GTIDSet
   Mismatch", or MySQL errno 1236 / 1789 (binlogs purged) under any code.
   Retrying there cannot succeed, so retry on another tablet. (Checked before
   the code rule so an UNAVAILABLE-wrapped purge still moves tablets.)
2. FAILED_PRECONDITION or UNAVAILABLE: the tablet or its connection is in
   transition (not serving, restarting, unreachable, health changed). Retry.
3. An ephemeral MySQL error (timeouts, lost connections, lock waits,
   deadlocks, resource exhaustion), recognised by its errno in the message.
   Retry.
4. Everything else (other INVALID_ARGUMENT, INTERNAL, PERMISSION_DENIED,
   UNAUTHENTICATED, permanent SQL errors such as 1062 ...): fail the request.

Retries are bounded (``docs/vitess.md`` §6.4): ``max_consecutive_failures``
failures in a row without a single event in between give up. Between
attempts the streamer waits an exponentially growing, jittered delay (vtgate
retries immediately, which hammers a struggling tablet in lockstep with every
other stream).
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass

from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError

__all__ = [
    "EPHEMERAL_MYSQL_ERRNOS",
    "POSITION_MISSING_ERRNOS",
    "RetryAction",
    "RetryDecision",
    "ShardRetryPolicy",
    "classify",
    "ended_unexpectedly",
    "mysql_errno",
]


class RetryAction(enum.Enum):
    """How a shard stream reacts to a failed tablet stream (see :func:`classify`)."""

    RETRY = "retry"  # pick a tablet again (the same one is allowed)
    RETRY_OTHER_TABLET = "retry_other_tablet"  # pick again, never this tablet
    FAIL = "fail"  # end the request with RetryDecision.error


# MySQL errors that say nothing about the stream itself, only about the moment:
# the same request is expected to work on a later attempt.
EPHEMERAL_MYSQL_ERRNOS = frozenset(
    {
        1021,  # disk full
        1037,  # out of memory
        1038,  # out of sort memory
        1040,  # too many connections
        1041,  # out of resources
        1053,  # server shutdown in progress
        1078,  # got signal
        1080,  # forcing close of thread
        1129,  # host blocked
        1135,  # can't create thread
        1203,  # too many user connections
        1205,  # lock wait timeout
        1206,  # lock table full
        1213,  # deadlock
        1815,  # internal error
        1874,  # InnoDB read-only
        2000,  # unknown client error
        2002,  # can't connect (socket)
        2003,  # can't connect (host)
        2006,  # server has gone away
        2012,  # handshake error
        2013,  # lost connection during query
        2018,  # named pipe state error
        2026,  # SSL connection error
        2027,  # malformed packet
        3024,  # query execution interrupted, maximum statement execution time exceeded
    }
)

# The tablet's binlogs no longer hold the requested position (1236: fatal error
# reading the binlog, e.g. a purged file; 1789: the source purged required GTIDs).
POSITION_MISSING_ERRNOS = frozenset({1236, 1789})

# "(errno 1236) (sqlstate HY000)" as Vitess renders SQL errors, "errno: 1236",
# and the Go MySQL driver's "Error 1236 (HY000): ...".
_ERRNO = re.compile(r"\berrno[:=]?\s*(\d{4,5})\b|\bError (\d{4,5}) \([0-9A-Z]{5}\)")


def mysql_errno(message: str) -> int | None:
    """The first MySQL error number mentioned in ``message``, if any."""
    match = _ERRNO.search(message)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def classify(error: VStreamError) -> RetryAction:
    """How a shard stream should react to ``error`` (see the module docstring)."""
    errno = mysql_errno(error.message)
    if errno in POSITION_MISSING_ERRNOS or (
        error.code == Code.INVALID_ARGUMENT and "GTIDSet Mismatch" in error.message
    ):
        return RetryAction.RETRY_OTHER_TABLET
    if error.code in (Code.FAILED_PRECONDITION, Code.UNAVAILABLE):
        return RetryAction.RETRY
    if errno in EPHEMERAL_MYSQL_ERRNOS:
        return RetryAction.RETRY
    return RetryAction.FAIL


def ended_unexpectedly(tablet_alias: str) -> VStreamError:
    """The error for a tablet stream that ended without an error or a journal.

    A tablet never ends a healthy stream on its own, so this means it went away
    (restart, shutdown). UNAVAILABLE makes :func:`classify` retry it. (vtgate
    uses UNKNOWN here, which its own rule then refuses to retry.)
    """
    return VStreamError(Code.UNAVAILABLE, f"vstream ended unexpectedly on tablet {tablet_alias}")


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """The answer of :meth:`ShardRetryPolicy.failure` to one failed attempt.

    On a retry the streamer waits until what it already queued is delivered,
    sleeps ``delay`` and picks a tablet again; on FAIL it raises ``error``,
    which ends the request. After too many failures in a row the action is
    FAIL even for a retryable error, and ``error`` says the shard gave up.
    """

    action: RetryAction
    delay: float  # seconds to wait before the next attempt; 0 when action is FAIL
    error: VStreamError  # what to report if action is FAIL; the cause otherwise


class ShardRetryPolicy:
    """Consecutive-failure count and backoff for one shard stream.

    One instance lives as long as the shard's streamer. It also remembers the
    tablets that lack the stream's position (``ignored_tablets``), for the
    tablet picker's ignore list.
    """

    def __init__(
        self,
        keyspace: str,
        shard: str,
        settings: GatewaySettings,
        rng: random.Random | None = None,
    ) -> None:
        self._keyspace = keyspace
        self._shard = shard
        self._settings = settings
        self._rng = rng if rng is not None else random.Random()
        self._consecutive = 0
        self._ignored: frozenset[str] = frozenset()

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    @property
    def ignored_tablets(self) -> frozenset[str]:
        """Aliases of tablets that failed with RETRY_OTHER_TABLET during this stream."""
        return self._ignored

    def event_received(self) -> None:
        """Any event from the tablet proves the stream works: forget past failures."""
        self._consecutive = 0

    def failure(self, error: VStreamError, tablet_alias: str) -> RetryDecision:
        """Record a failed attempt on ``tablet_alias`` and decide what comes next."""
        action = classify(error)
        if action is RetryAction.FAIL:
            return RetryDecision(RetryAction.FAIL, 0.0, error)
        if action is RetryAction.RETRY_OTHER_TABLET:
            self._ignored = self._ignored | {tablet_alias}
        self._consecutive += 1
        if self._consecutive >= self._settings.max_consecutive_failures:
            return RetryDecision(
                RetryAction.FAIL,
                0.0,
                VStreamError(
                    error.code,
                    f"persistent error in vstream for {self._keyspace}/{self._shard} "
                    f"on tablet {tablet_alias}; giving up: {error.message}",
                ),
            )
        return RetryDecision(action, self._backoff(self._consecutive), error)

    def _backoff(self, attempt: int) -> float:
        """Equal jitter: half the exponential step fixed, half random.

        The fixed half guarantees a real pause; the random half spreads out
        streams that failed together (one tablet restart hits all of them).
        """
        initial = self._settings.retry_backoff_initial
        # The exponent is capped so a huge max_consecutive_failures cannot overflow.
        step = initial * 2.0 ** min(attempt - 1, 64)
        ceiling = min(self._settings.retry_backoff_max, step)
        return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)
