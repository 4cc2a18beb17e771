"""One shard's failover buffer: when PRIMARY streams wait instead of retrying.

Pure and synchronous, like :mod:`vsmux.core.retry`: every call takes the
current time as an argument, nothing sleeps and nothing reads a clock. The
Trio side (:mod:`vsmux.mux.failover_wait`) holds the Events streams wait on
and calls in here to learn what to do.

A :class:`ShardBuffer` exists per keyspace/shard and is shared by every
PRIMARY stream of that shard, so one failover is one buffering episode
however many streams see it. Its states and transitions (the one table is
:data:`TRANSITIONS`):

- **IDLE** — no failover in progress. A stream that sees a failover
  signature starts buffering (-> BUFFERING) unless the last buffering ended,
  or a reparent was seen, less than ``min_time_between_failovers`` ago: that
  start is skipped and counted, and the stream retries as usual.
- **BUFFERING** — a failover is in progress; streams that see it wait.
  Buffering stops (-> DRAINING) when a serving primary is seen
  (``NEW_PRIMARY``), when ``max_failover_duration`` has passed since it
  started (``MAX_DURATION``, noticed by whichever call comes first after
  the deadline), or at shutdown (``SHUTDOWN``). Each stop is counted by
  reason, with the failover's duration.
- **DRAINING** — buffering stopped and the streams that waited are being let
  go. A stream that reports a failover now does not wait: the failover just
  ended, so it retries at once. When the last waiting stream has left, the
  buffer is IDLE again.

A stream waits at most ``window`` seconds, and never past the episode's
``max_failover_duration``. In dry run the buffer moves through the same
states and counts the same things, but no stream ever waits.

Metrics (labels: keyspace, shard, ``PRIMARY``) go to the given
:class:`~vsmux.core.metrics.Metrics`, named ``VStreamFailoverBuffer*``
(listed in :data:`vsmux.core.metrics.METRICS`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vsmux.core.metrics import Labels, Metrics
from vsmux.core.retry import RetryAction, classify
from vsmux.errors import Code, VStreamError

__all__ = [
    "TRANSITIONS",
    "Admission",
    "BufferConfig",
    "BufferState",
    "Decision",
    "ShardBuffer",
    "SkipReason",
    "StopReason",
    "is_failover_signature",
]


class BufferState(enum.Enum):
    IDLE = "IDLE"
    BUFFERING = "BUFFERING"
    DRAINING = "DRAINING"


class StopReason(enum.Enum):
    """Why a buffering episode ended (the ``BufferStops*`` metrics)."""

    NEW_PRIMARY = "NewPrimary"
    MAX_DURATION = "MaxFailoverDurationExceeded"
    SHUTDOWN = "Shutdown"


class SkipReason(enum.Enum):
    """Why a failover signature did not start buffering."""

    LAST_FAILOVER_TOO_RECENT = "LastFailoverTooRecent"
    LAST_REPARENT_TOO_RECENT = "LastReparentTooRecent"


class Admission(enum.Enum):
    """What a stream that saw a failover signature does next."""

    WAIT = "wait"  # wait for the end of the failover (until Decision.deadline)
    RETRY = "retry"  # not buffered: take the normal retry path


# state -> the states it may move to, and what moves it there.
TRANSITIONS: dict[BufferState, dict[BufferState, str]] = {
    BufferState.IDLE: {BufferState.BUFFERING: "failover signature, none too recent"},
    BufferState.BUFFERING: {
        BufferState.DRAINING: "serving primary seen, max duration passed, or shutdown"
    },
    BufferState.DRAINING: {BufferState.IDLE: "the last waiting stream left"},
}

_PREFIX = "VStreamFailoverBuffer"


@dataclass(frozen=True, slots=True)
class BufferConfig:
    """The tunables of every shard buffer (``GatewaySettings.failover_*``)."""

    window: float = 10.0
    max_failover_duration: float = 20.0
    min_time_between_failovers: float = 60.0
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to :meth:`ShardBuffer.failover_seen`.

    ``deadline`` (WAIT only) is when the stream stops waiting on its own:
    the end of its window or of the episode's maximum duration, whichever is
    first. ``episode`` identifies the buffering episode the stream joined.
    ``skipped`` says why a RETRY was not buffered (None: dry run, or the
    buffer was draining).
    """

    admission: Admission
    deadline: float = 0.0
    episode: int = 0
    skipped: SkipReason | None = None


class ShardBuffer:
    """The failover buffer of one keyspace/shard; see the module docstring."""

    def __init__(
        self, keyspace: str, shard: str, config: BufferConfig, metrics: Metrics | None = None
    ) -> None:
        self.keyspace = keyspace
        self.shard = shard
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self._labels: Labels = (keyspace, shard, "PRIMARY")
        self.state = BufferState.IDLE
        # Counts buffering episodes; a stream's Decision.episode is the one it joined.
        self.episode = 0
        self.waiting = 0  # streams waiting now (entered, not yet left)
        self.last_start: float | None = None
        self.last_end: float | None = None
        self.last_reparent: float | None = None
        self.last_stop: StopReason | None = None
        # The serving primary last seen, and the newest primary term start reported.
        self.primary: str | None = None
        self.primary_term = 0

    # -- queries ------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.keyspace}/{self.shard}"

    def end_of_episode(self) -> float:
        """When the current episode reaches its maximum duration (BUFFERING only)."""
        assert self.last_start is not None
        return self.last_start + self.config.max_failover_duration

    # -- events -------------------------------------------------------------

    def failover_seen(self, now: float) -> Decision:
        """A stream of this shard lost its primary with a failover signature.

        Starts buffering if IDLE and no failover or reparent is too recent.
        In BUFFERING (after this call) the stream waits, unless dry run; the
        caller then calls :meth:`leave` once it stops waiting.
        """
        self.expire(now)
        if self.state is BufferState.DRAINING:
            return Decision(Admission.RETRY)  # a failover just ended: retry at once
        if self.state is BufferState.IDLE:
            skipped = self._too_recent(now)
            if skipped is not None:
                self.metrics.add(f"{_PREFIX}StartsSkipped{skipped.value}", self._labels)
                return Decision(Admission.RETRY, skipped=skipped)
            self._start(now)
        if self.config.dry_run:
            self.metrics.add(f"{_PREFIX}StreamsBufferedDryRun", self._labels)
            return Decision(Admission.RETRY, episode=self.episode)
        self.waiting += 1
        self.metrics.add(f"{_PREFIX}StreamsBuffered", self._labels)
        self.metrics.set(f"{_PREFIX}Waiting", self._labels, self.waiting)
        deadline = min(now + self.config.window, self.end_of_episode())
        return Decision(Admission.WAIT, deadline, self.episode)

    def primary_seen(self, alias: str, now: float, term_start: int = 0) -> StopReason | None:
        """A tablet reported itself the shard's serving primary (since ``term_start``).

        A report with an older primary term than one already seen is an old
        primary that has not noticed its replacement: ignored. A primary
        other than the last one seen is a reparent (remembered for
        ``min_time_between_failovers``). While BUFFERING, any other serving
        primary ends the episode: NEW_PRIMARY is returned so the waiters are
        woken.
        """
        if term_start < self.primary_term:
            return self.expire(now)
        self.primary_term = term_start
        if self.primary is not None and alias != self.primary:
            self.last_reparent = now
        self.primary = alias
        if self.expire(now) is not None:
            return StopReason.MAX_DURATION
        if self.state is BufferState.BUFFERING:
            self._stop(StopReason.NEW_PRIMARY, now)
            return StopReason.NEW_PRIMARY
        return None

    def expire(self, now: float) -> StopReason | None:
        """Stop the episode if its maximum duration has passed (MAX_DURATION)."""
        if self.state is BufferState.BUFFERING and now >= self.end_of_episode():
            # It ended at the maximum, whenever a call notices: the duration and
            # the time between failovers count from there.
            self._stop(StopReason.MAX_DURATION, self.end_of_episode())
            return StopReason.MAX_DURATION
        return None

    def shutdown(self, now: float) -> StopReason | None:
        """The gateway is stopping: end buffering (SHUTDOWN) so waiters are let go."""
        if self.state is BufferState.BUFFERING:
            self._stop(StopReason.SHUTDOWN, now)
            return StopReason.SHUTDOWN
        return None

    def leave(self, episode: int, now: float, *, window_exceeded: bool = False) -> None:
        """A stream that was told to WAIT stops waiting (woken, timed out or cancelled).

        ``window_exceeded``: it left because its own window ended while the
        episode it joined still runs.
        """
        self.expire(now)
        self.waiting -= 1
        self.metrics.set(f"{_PREFIX}Waiting", self._labels, self.waiting)
        if window_exceeded and self.state is BufferState.BUFFERING and episode == self.episode:
            self.metrics.add(f"{_PREFIX}StreamsWindowExceeded", self._labels)
        self._maybe_idle()

    # -- transitions ----------------------------------------------------------

    def _too_recent(self, now: float) -> SkipReason | None:
        gap = self.config.min_time_between_failovers
        if self.last_end is not None and now - self.last_end < gap:
            return SkipReason.LAST_FAILOVER_TOO_RECENT
        if self.last_reparent is not None and now - self.last_reparent < gap:
            return SkipReason.LAST_REPARENT_TOO_RECENT
        return None

    def _move(self, to: BufferState) -> None:
        assert to in TRANSITIONS[self.state], f"{self.state} -> {to}"
        self.state = to

    def _start(self, now: float) -> None:
        self._move(BufferState.BUFFERING)
        self.episode += 1
        self.last_start = now
        self.metrics.add(f"{_PREFIX}Starts", self._labels)

    def _stop(self, reason: StopReason, now: float) -> None:
        assert self.last_start is not None
        self._move(BufferState.DRAINING)
        self.last_end = now
        self.last_stop = reason
        duration = now - self.last_start
        self.metrics.add(f"{_PREFIX}Stops{reason.value}", self._labels)
        self.metrics.add(f"{_PREFIX}FailoverDurationSumSeconds", self._labels, duration)
        self.metrics.set(f"{_PREFIX}LastFailoverDurationSeconds", self._labels, duration)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self.state is BufferState.DRAINING and self.waiting == 0:
            self._move(BufferState.IDLE)


def is_failover_signature(error: VStreamError) -> bool:
    """Whether a PRIMARY stream's ``error`` looks like its primary failing over.

    UNAVAILABLE or FAILED_PRECONDITION from the tablet (not serving, type
    changed, unreachable, the stream ended, its health stream said so), unless
    it is really a missing position, which waiting cannot cure.
    """
    return error.code in (Code.UNAVAILABLE, Code.FAILED_PRECONDITION) and (
        classify(error) is RetryAction.RETRY
    )
