"""Waiting out a primary failover: the Trio side of :mod:`vsmux.core.failover`.

:class:`FailoverBuffers` belongs to the :class:`~vsmux.mux.api.Gateway` and
holds one :class:`~vsmux.core.failover.ShardBuffer` per keyspace/shard, so
every PRIMARY stream of a shard, in every session, shares one buffer. A
streamer whose primary went away with a failover signature calls
:meth:`FailoverBuffers.ride_out`; the buffer says whether it waits. A
waiting stream sleeps on a trio Event of the buffering episode, set when the
episode stops: a serving primary was seen (by a waiting stream's look at the
shard's tablets, or by any stream's health watch), the maximum duration
passed, or :meth:`FailoverBuffers.shutdown`. Its own window bounds the wait
too.

While streams wait, one of them (whichever comes first; the next one takes
over if it leaves) looks for the new primary every
``failover_poll_interval``: it reads the topology afresh and asks every
tablet of the shard for one health report, the topology's primary first; the
first that reports itself a serving PRIMARY ends the episode. Asking every
tablet, not just the topology's primary, is how a gateway with a static
topology file finds the promoted replica; :meth:`FailoverBuffers.primary`
tells the tablet picker which one it was.

Each start, stop and skipped start is logged on ``vsmux.failover`` (skips
at most once per ``_SKIP_LOG_SECONDS`` per shard); in dry run the lines say
what would have happened.

No task here outlives its caller: the look runs in the waiting stream's own
nursery and is cancelled when it stops waiting.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

import trio

from vsmux.core.failover import (
    Admission,
    BufferConfig,
    BufferState,
    ShardBuffer,
    SkipReason,
    StopReason,
)
from vsmux.core.metrics import Metrics
from vsmux.core.picking import health_problem
from vsmux.core.settings import GatewaySettings
from vsmux.errors import VStreamError
from vsmux.mux.shard_source import SourceDirectory
from vsmux.proto import topodata
from vsmux.topology import TabletInfo, Topology

__all__ = ["FailoverBuffers", "Ride", "RideOutcome"]

log = logging.getLogger("vsmux.failover")

_PRIMARY = topodata.TabletType.PRIMARY
# A primary that keeps failing would log a skipped start per stream and retry.
_SKIP_LOG_SECONDS = 5.0
# Floor for the poll interval, so a zero setting cannot spin against the tablets.
_MIN_POLL_INTERVAL = 0.05


class RideOutcome(enum.Enum):
    """How a stream's wait in the buffer ended."""

    RESUMED = "resumed"  # a new serving primary: reconnect, no retry spent
    NOT_BUFFERED = "not_buffered"  # the buffer did not take it: retry as usual
    TIMED_OUT = "timed_out"  # window or maximum duration: retry as usual
    SHUTDOWN = "shutdown"  # the gateway is stopping: retry as usual


@dataclass(frozen=True, slots=True)
class Ride:
    """What :meth:`FailoverBuffers.ride_out` reports: how it ended, seconds waited.

    The streamer adds the wait to the error a retry that then gives up ends
    with (``ShardStreamer._with_wait``).
    """

    outcome: RideOutcome
    waited: float


@dataclass(slots=True, eq=False)
class _Episode:
    number: int
    ended: trio.Event = field(default_factory=trio.Event)
    reason: StopReason | None = None


@dataclass(slots=True, eq=False)
class _Shard:
    buffer: ShardBuffer
    episode: _Episode = field(default_factory=lambda: _Episode(0))
    watching: bool = False
    watcher_left: trio.Event = field(default_factory=trio.Event)
    skip_logged_at: float | None = None
    stop_logged_for: float | None = None


class FailoverBuffers:
    """Every shard's failover buffer of one gateway; see the module docstring."""

    def __init__(
        self,
        topology: Topology,
        sources: SourceDirectory,
        settings: GatewaySettings,
        metrics: Metrics,
    ) -> None:
        self._topology = topology
        self._sources = sources
        self._settings = settings
        self._metrics = metrics
        self._config = BufferConfig(
            window=settings.failover_window,
            max_failover_duration=settings.failover_max_duration,
            min_time_between_failovers=settings.failover_min_time_between,
            dry_run=settings.failover_dry_run,
        )
        self._shards: dict[tuple[str, str], _Shard] = {}

    @property
    def enabled(self) -> bool:
        return self._settings.failover_buffer_enabled

    def buffer(self, keyspace: str, shard: str) -> ShardBuffer:
        """The shard's buffer (created on first use)."""
        return self._shard(keyspace, shard).buffer

    def primary(self, keyspace: str, shard: str) -> str | None:
        """Alias of the tablet last seen reporting itself the shard's serving primary."""
        found = self._shards.get((keyspace, shard))
        return found.buffer.primary if found is not None else None

    def primary_seen(self, keyspace: str, shard: str, alias: str, term_start: int = 0) -> None:
        """A tablet reported itself the shard's serving PRIMARY: may end buffering."""
        state = self._shard(keyspace, shard)
        state.buffer.primary_seen(alias, trio.current_time(), term_start)
        self._wake(state)

    def primary_lost(self, keyspace: str, shard: str, alias: str) -> None:
        """Streams on ``alias`` failed as in a failover: stop naming it as the primary."""
        found = self._shards.get((keyspace, shard))
        if found is not None and found.buffer.primary == alias:
            found.buffer.primary = None

    def shutdown(self) -> None:
        """End every buffering episode (SHUTDOWN); the waiting streams retry as usual."""
        now = trio.current_time()
        for state in self._shards.values():
            state.buffer.shutdown(now)
            self._wake(state)

    async def ride_out(self, keyspace: str, shard: str, error: VStreamError) -> Ride:
        """Wait in the shard's buffer after ``error``, a failover signature, if it says so.

        Returns at once (NOT_BUFFERED) when the buffer does not take the
        stream: disabled, dry run, a failover or reparent too recent (after
        one look at the shard's tablets for the current primary, so the retry
        goes there), or one just ended. Otherwise returns when the episode stops or the stream's
        deadline (window, maximum duration) passes. Cancellation stops the
        wait and the look for a primary, and leaves the buffer before it
        propagates.
        """
        if not self.enabled:
            return Ride(RideOutcome.NOT_BUFFERED, 0.0)
        state = self._shard(keyspace, shard)
        buffer = state.buffer
        started = trio.current_time()
        episode_before = buffer.episode
        decision = buffer.failover_seen(started)
        self._wake(state)
        if buffer.episode != episode_before:
            self._log_start(buffer, error)
        if decision.skipped is not None:
            self._log_skip(state, decision.skipped, started, error)
        if decision.admission is not Admission.WAIT:
            if decision.skipped is not None:
                # Not waiting, but the retry should go to the right tablet: one look
                # at the shard's tablets, so a topology that lags behind (a static
                # file) does not send it back to the old primary.
                await self._refresh_primary(keyspace, shard)
            return Ride(RideOutcome.NOT_BUFFERED, 0.0)
        if state.episode.number != decision.episode:
            state.episode = _Episode(decision.episode)
        episode = state.episode
        window_exceeded = False
        try:
            with trio.move_on_at(decision.deadline) as window:
                await self._wait(state, episode)
            window_exceeded = window.cancelled_caught
        finally:
            # A cancelled wait (the request ended) is not a window exceeded.
            now = trio.current_time()
            buffer.leave(decision.episode, now, window_exceeded=window_exceeded)
            self._wake(state)
        waited = trio.current_time() - started
        if episode.reason is StopReason.NEW_PRIMARY:
            return Ride(RideOutcome.RESUMED, waited)
        if episode.reason is StopReason.SHUTDOWN:
            return Ride(RideOutcome.SHUTDOWN, waited)
        return Ride(RideOutcome.TIMED_OUT, waited)

    # -- internals ------------------------------------------------------------

    def _shard(self, keyspace: str, shard: str) -> _Shard:
        key = (keyspace, shard)
        found = self._shards.get(key)
        if found is None:
            found = self._shards[key] = _Shard(
                ShardBuffer(keyspace, shard, self._config, self._metrics)
            )
        return found

    def _wake(self, state: _Shard) -> None:
        """Set the episode's Event once the buffer has left BUFFERING for it."""
        buffer = state.buffer
        episode = state.episode
        if episode.ended.is_set():
            return
        if buffer.episode != episode.number or buffer.state is not BufferState.BUFFERING:
            episode.reason = buffer.last_stop
            episode.ended.set()
        if buffer.last_end is not None and buffer.last_end != state.stop_logged_for:
            state.stop_logged_for = buffer.last_end
            assert buffer.last_start is not None and buffer.last_stop is not None
            log.info(
                "%s for %s after %.1fs: %s; %d streams released",
                "Dry run: would have stopped buffering"
                if self._config.dry_run
                else "Stopped buffering",
                buffer.name,
                buffer.last_end - buffer.last_start,
                _STOP_TEXT[buffer.last_stop],
                buffer.waiting,
            )

    def _log_start(self, buffer: ShardBuffer, error: VStreamError) -> None:
        config = self._config
        log.info(
            "%s for %s (window %gs, max failover duration %gs), after: %s",
            "Dry run: would have started buffering" if config.dry_run else "Started buffering",
            buffer.name,
            config.window,
            config.max_failover_duration,
            error.message,
        )

    def _log_skip(self, state: _Shard, reason: SkipReason, now: float, error: VStreamError) -> None:
        if state.skip_logged_at is not None and now - state.skip_logged_at < _SKIP_LOG_SECONDS:
            return
        state.skip_logged_at = now
        log.info(
            "Not buffering %s (%s, less than %gs ago), after: %s",
            state.buffer.name,
            _SKIP_TEXT[reason],
            self._config.min_time_between_failovers,
            error.message,
        )

    async def _wait(self, state: _Shard, episode: _Episode) -> None:
        """Until the episode ends; one waiter at a time looks for the new primary."""
        while not episode.ended.is_set():
            if not state.watching:
                state.watching = True
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._look_for_primary, state)
                        await episode.ended.wait()
                        nursery.cancel_scope.cancel()
                finally:
                    state.watching = False
                    left, state.watcher_left = state.watcher_left, trio.Event()
                    left.set()
            else:
                await _first_of(episode.ended, state.watcher_left)

    async def _refresh_primary(self, keyspace: str, shard: str) -> None:
        found = await self._serving_primary(keyspace, shard)
        if found is not None:
            self.primary_seen(keyspace, shard, *found)

    async def _look_for_primary(self, state: _Shard) -> None:
        buffer = state.buffer
        interval = max(self._settings.failover_poll_interval, _MIN_POLL_INTERVAL)
        while True:
            found = await self._serving_primary(buffer.keyspace, buffer.shard)
            if found is not None:
                self.primary_seen(buffer.keyspace, buffer.shard, *found)
            await trio.sleep(interval)

    async def _serving_primary(self, keyspace: str, shard: str) -> tuple[str, int] | None:
        """The tablet of the shard that reports itself a serving PRIMARY, and its term.

        If several do (an old primary that has not noticed yet), the newest
        term wins; on a tie, the topology's primary, then topology order.
        """
        tablets = self._topology.tablets_for(keyspace, shard)
        tablets.sort(key=lambda t: t.tablet_type != _PRIMARY)  # stable: the primary first
        terms: list[int | None] = [None] * len(tablets)

        async def probe(index: int) -> None:
            terms[index] = await self._primary_term(tablets[index])

        async with trio.open_nursery() as nursery:
            for index in range(len(tablets)):
                nursery.start_soon(probe, index)
        best: tuple[str, int] | None = None
        for tablet, term in zip(tablets, terms, strict=True):
            if term is not None and (best is None or term > best[1]):
                best = (tablet.alias, term)
        return best

    async def _primary_term(self, tablet: TabletInfo) -> int | None:
        """The primary term start ``tablet`` reports if it is a serving PRIMARY, else None."""
        source = self._sources.source_for(tablet)
        with trio.move_on_after(self._settings.health_probe_timeout):
            try:
                async with source.stream_health() as reports:
                    async for resp in reports:
                        if health_problem(resp, _PRIMARY, 0.0) is not None:
                            return None
                        return resp.primary_term_start_timestamp
            except VStreamError:
                return None
        return None


_STOP_TEXT = {
    StopReason.NEW_PRIMARY: "a serving primary was seen",
    StopReason.MAX_DURATION: "the failover took longer than the maximum",
    StopReason.SHUTDOWN: "the gateway is shutting down",
}
_SKIP_TEXT = {
    SkipReason.LAST_FAILOVER_TOO_RECENT: "the last buffering ended",
    SkipReason.LAST_REPARENT_TOO_RECENT: "a reparent was seen",
}


async def _first_of(*events: trio.Event) -> None:
    """Return as soon as any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)
