"""Choosing a tablet for a shard stream, and watching it while it streams.

:class:`TabletPicker` turns the pure candidate order of
:mod:`vsmux.core.picking` into a choice: a primary is taken as is; any other
type must pass one StreamHealth probe. When nothing qualifies it looks again
every ``tablet_pick_retry_interval`` and gives up after
``tablet_pick_timeout`` with an UNAVAILABLE error naming keyspace, shard,
tablet type, cells and what was wrong with each tablet.

:func:`watch_health` runs beside a shard's vstream for as long as it streams
and raises UNAVAILABLE (so the retry policy restarts the stream elsewhere)
when the tablet stops being a good source.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Literal, NoReturn

import trio

from vsmux.core.picking import candidates, health_problem, type_name
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.mux.affinity import TabletAffinity
from vsmux.mux.shard_source import ShardSource, SourceDirectory
from vsmux.proto import query, topodata
from vsmux.topology import TabletInfo, Topology

__all__ = ["TabletPicker", "position_lost", "watch_health"]


# Floor for the interval between pick attempts, so a zero setting cannot turn
# the wait into a busy loop against the tablets.
_MIN_RETRY_INTERVAL = 0.1


class _Probe(enum.Enum):
    PENDING = "pending"


# A probe's outcome: None = healthy, str = why not, PENDING = not known yet.
_Verdict = str | None | Literal[_Probe.PENDING]


class TabletPicker:
    """Picks tablets of one tablet type within the request's cells.

    One picker serves every shard of a request; ``pick`` may run concurrently
    for different shards. ``primary_hint(keyspace, shard)``, when given, names
    the tablet last seen reporting itself the shard's serving primary (the
    failover buffer's record): for PRIMARY it is tried first, whatever type
    the topology gives it, since after a failover the tablets' health is
    fresher than a topology file.
    """

    def __init__(
        self,
        topology: Topology,
        sources: SourceDirectory,
        settings: GatewaySettings,
        *,
        tablet_type: topodata.TabletType,
        cells: list[str],
        cell_preference: str,
        rng: random.Random | None = None,
        primary_hint: Callable[[str, str], str | None] | None = None,
        affinity: TabletAffinity | None = None,
    ) -> None:
        self._primary_hint = primary_hint
        self._affinity = affinity
        self._topology = topology
        self._sources = sources
        self._settings = settings
        self._tablet_type = tablet_type
        self._cells = list(cells)
        self._cell_preference = cell_preference
        self._rng = rng if rng is not None else random.Random()
        self._probe_timeout = settings.health_probe_timeout

    async def pick(
        self, keyspace: str, shard: str, ignore: frozenset[str] = frozenset()
    ) -> TabletInfo:
        """A tablet to stream ``keyspace/shard`` from, skipping aliases in ``ignore``.

        Attempts run at 0, interval, 2*interval, ... after the call (the
        topology is read afresh each time) until one succeeds; at
        ``tablet_pick_timeout`` it raises UNAVAILABLE with the last reasons.
        Cancellation stops any probes in flight (their health streams are
        closed) and propagates; nothing keeps running.
        """
        affinity = self._affinity
        if affinity is None or self._tablet_type == topodata.TabletType.PRIMARY:
            return await self._pick(keyspace, shard, ignore)
        # Requests that share streams agree on one tablet per shard: picks wait
        # for each other and try the tablet the last one chose first.
        async with affinity.lock(keyspace, shard, self._tablet_type):
            tablet = await self._pick(keyspace, shard, ignore)
            affinity.picked(keyspace, shard, self._tablet_type, tablet.alias)
            return tablet

    async def _pick(self, keyspace: str, shard: str, ignore: frozenset[str]) -> TabletInfo:
        settings = self._settings
        interval = max(settings.tablet_pick_retry_interval, _MIN_RETRY_INTERVAL)
        started = trio.current_time()
        deadline = started + settings.tablet_pick_timeout
        # The first attempt runs even with a zero timeout; it is bounded by the probe timeout.
        tablet, reasons = await self._attempt(keyspace, shard, ignore)
        next_attempt = started
        with trio.move_on_at(deadline):
            while tablet is None:
                next_attempt += interval
                await trio.sleep_until(next_attempt)
                tablet, reasons = await self._attempt(keyspace, shard, ignore)
        if tablet is not None:
            return tablet
        raise VStreamError(
            Code.UNAVAILABLE,
            f"no healthy {type_name(self._tablet_type)} tablet for {keyspace}/{shard} "
            f"in cells {','.join(self._cells)} after {settings.tablet_pick_timeout:g}s: "
            + "; ".join(reasons),
        )

    def has_candidates(self, keyspace: str, shard: str, ignore: frozenset[str]) -> bool:
        """Whether the topology has a tablet for ``keyspace/shard`` outside ``ignore``.

        Healthy or not: this answers only "is there anything left to try", so
        a streamer whose every tablet lacks its position can fail at once
        instead of waiting ``tablet_pick_timeout`` for a tablet that cannot
        appear by waiting.
        """
        return bool(self._candidates(keyspace, shard, ignore))

    def _candidates(
        self,
        keyspace: str,
        shard: str,
        ignore: frozenset[str],
        rng: random.Random | None = None,
    ) -> list[TabletInfo]:
        found = candidates(
            self._topology,
            keyspace,
            shard,
            self._tablet_type,
            self._cells,
            self._cell_preference,
            self._settings.cell,
            ignore,
            rng=rng,
        )
        if self._tablet_type != topodata.TabletType.PRIMARY:
            if self._affinity is not None:
                preferred = self._affinity.preferred(keyspace, shard, self._tablet_type)
                for index, tablet in enumerate(found):
                    if tablet.alias == preferred:
                        return [tablet, *found[:index], *found[index + 1 :]]
            return found
        if self._primary_hint is None:
            return found
        hinted = self._primary_hint(keyspace, shard)
        if hinted is None or hinted in ignore:
            return found
        for tablet in self._topology.tablets_for(keyspace, shard):
            if tablet.alias == hinted:
                return [tablet, *(t for t in found if t.alias != hinted)]
        return found

    async def _attempt(
        self, keyspace: str, shard: str, ignore: frozenset[str]
    ) -> tuple[TabletInfo | None, list[str]]:
        """One look at the topology: a usable tablet, or the reasons there is none."""
        found = self._candidates(keyspace, shard, ignore, rng=self._rng)
        if not found:
            return None, [self._no_candidates(keyspace, shard, ignore)]
        if self._tablet_type == topodata.TabletType.PRIMARY:
            return found[0], []
        return await self._probe_in_order(found)

    def _no_candidates(self, keyspace: str, shard: str, ignore: frozenset[str]) -> str:
        everyone = self._candidates(keyspace, shard, frozenset())
        if everyone:
            skipped = ", ".join(t.alias for t in everyone)
            return f"every candidate lacks the stream's position ({skipped})"
        return "the topology has no such tablet"

    async def _probe_in_order(
        self, tablets: list[TabletInfo]
    ) -> tuple[TabletInfo | None, list[str]]:
        """Probe all ``tablets`` at once; the first healthy one in order wins.

        Probing in parallel bounds an attempt by one probe timeout however many
        tablets are dead; the probes still running are cancelled as soon as
        every tablet ahead of a healthy one has answered.
        """
        verdicts: list[_Verdict] = [_Probe.PENDING] * len(tablets)

        async def probe(index: int, cancel_scope: trio.CancelScope) -> None:
            verdicts[index] = await self._probe(tablets[index])
            if _first_healthy(verdicts) is not None:
                cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            for index in range(len(tablets)):
                nursery.start_soon(probe, index, nursery.cancel_scope)
        chosen = _first_healthy(verdicts)
        if chosen is not None:
            return tablets[chosen], []
        return None, [f"{t.alias} {v}" for t, v in zip(tablets, verdicts, strict=True)]

    async def _probe(self, tablet: TabletInfo) -> str | None:
        """None if ``tablet``'s first health report qualifies it, else why not."""
        source = self._sources.source_for(tablet)
        with trio.move_on_after(self._probe_timeout):
            try:
                async with source.stream_health() as reports:
                    async for resp in reports:
                        return health_problem(
                            resp, self._tablet_type, self._settings.max_replication_lag
                        )
            except VStreamError as err:
                return f"failed its health check: {err.message}"
            return "ended its health stream without a report"
        return f"sent no health report within {self._probe_timeout:g}s"


def position_lost(
    keyspace: str,
    shard: str,
    tablet_type: topodata.TabletType,
    tablet_alias: str,
    error: VStreamError,
    ignored: frozenset[str],
) -> VStreamError:
    """The error for a shard whose every tablet lacks the stream's position.

    It keeps the tablet's own code and message (binlogs purged, GTIDSet
    mismatch) and says what the client can do about it.
    """
    others = sorted(ignored - {tablet_alias})
    also = f" (nor do {', '.join(others)})" if others else ""
    return VStreamError(
        error.code,
        f"vstream for {keyspace}/{shard} cannot continue: {type_name(tablet_type)} tablet "
        f"{tablet_alias} does not have the stream's position{also}: {error.message}; "
        "no other tablet can serve it, so restart the stream from a newer position "
        '(a later vgtid, or "current") or copy the tables again',
    )


def _first_healthy(verdicts: list[_Verdict]) -> int | None:
    """Index of the first healthy tablet once all tablets before it are known bad."""
    for index, verdict in enumerate(verdicts):
        if verdict is _Probe.PENDING:
            return None
        if verdict is None:
            return index
    return None


async def watch_health(
    source: ShardSource,
    tablet_type: topodata.TabletType,
    settings: GatewaySettings,
    on_healthy: Callable[[query.StreamHealthResponse], None] | None = None,
) -> NoReturn:
    """Watch the health of the tablet behind ``source`` while a vstream runs on it.

    Never returns: raises VStreamError(UNAVAILABLE, "tablet <alias> ...,
    restarting vstream") when the tablet changes type, reports a health
    error, stops serving, lags more than ``max_replication_lag`` (replicas),
    sends no report for ``health_report_timeout`` (a stream open but silent),
    or its health stream ends or fails. UNAVAILABLE makes the retry policy
    restart the shard stream from its last delivered position.

    ``on_healthy`` is called with every report that finds the tablet fit
    (the failover buffer learns from it that a primary serves).

    Run it in the nursery of the shard's vstream. Cancelling it closes the
    health stream before the Cancelled exception propagates.
    """
    alias = source.tablet.alias
    problem: str | None = None
    silence = settings.health_report_timeout
    try:
        async with source.stream_health() as reports:
            while problem is None:
                with trio.move_on_after(silence) as waited:
                    resp = await anext(reports, None)
                if waited.cancelled_caught:
                    problem = f"sent no health report for {silence:g}s"
                elif resp is None:
                    break  # the stream ended
                else:
                    problem = health_problem(resp, tablet_type, settings.max_replication_lag)
                    if problem is None and on_healthy is not None:
                        on_healthy(resp)
    except VStreamError as err:
        problem = f"health stream failed ({err.message})"
    if problem is None:
        problem = "stopped reporting health"
    raise VStreamError(Code.UNAVAILABLE, f"tablet {alias} {problem}, restarting vstream")
