"""Which shard streams share a tablet stream: the gateway's registry of feeds.

The server opens one :class:`FeedHub` (:func:`open_feed_hub`) for its whole
life; its nursery runs every feed and shared health watch, so they outlive
the request that started them and end when their last consumer has gone
(after ``share_linger_seconds``).

Two shard streams share a feed when they ask the same tablet for the same
events: the same keyspace, shard, tablet type, filter, options (the
keyspace-heartbeat table) and effective caller (tablets may apply table
ACLs per caller) — the :data:`~vsmux.mux.feed.FeedKey` — and their positions
are close: the joiner's next transaction is kept in the feed's ring, at most
``share_join_transactions`` behind its newest, and has been there at most
``share_join_seconds``.
A request at ``current`` joins a caught-up feed at its newest position.
What never shares: the copy phase (position ``""`` or ``table_last_p_ks``),
keyspaces with ``share = false`` in the topology, requests with the gRPC
metadata ``vsmux-share: off`` (the session then uses the plain sources), and
everything when ``share_streams`` is off.

For replica types a shard may have several tablets;
:class:`~vsmux.mux.affinity.TabletAffinity`
makes the pickers of all requests prefer the tablet the shard's streams
last went to, so they meet on one feed, and after that tablet fails, on the
same next one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from vsmux.core.feed_ring import FeedRing
from vsmux.core.picking import type_name
from vsmux.core.settings import GatewaySettings
from vsmux.mux.affinity import TabletAffinity
from vsmux.mux.feed import SETTLE_SECONDS, Consumer, Feed, FeedKey
from vsmux.mux.feed_source import SharedSource
from vsmux.mux.shard_source import ShardSource, SourceDirectory
from vsmux.mux.shared_health import SharedHealth
from vsmux.proto import binlogdata, topodata
from vsmux.topology import TabletInfo, Topology
from vsmux.wire import Frame

__all__ = [
    "FeedCounters",
    "FeedHub",
    "FeedStats",
    "SharingDirectory",
    "open_feed_hub",
]


@dataclass(slots=True)
class FeedCounters:
    """What the hub has done since it opened (Prometheus counters)."""

    feeds_opened: int = 0
    # Shard streams that attached to an existing feed when they started.
    joins: int = 0
    # Private streams handed over to a feed once they reached its ring.
    handovers: int = 0
    # Consumers a feed let go to a private stream (stragglers).
    detaches: int = 0
    # Private streams opened (no feed kept the position, or after a detach).
    private_streams: int = 0


@dataclass(frozen=True, slots=True)
class FeedStats:
    """One feed as the metrics and the demo's live view show it."""

    keyspace: str
    shard: str
    tablet_type: str
    tablet: str
    consumers: int
    position: str
    # Seconds between the newest unit's commit and the tablet sending it.
    lag: float
    # How long consumers' next units have waited for them, in seconds.
    wait_min: float
    wait_max: float
    wait_avg: float
    kept_units: int
    kept_bytes: int
    events: int
    age: float


class FeedHub:
    """Every feed and shared health watch of one gateway; see the module docstring."""

    def __init__(
        self,
        sources: SourceDirectory,
        topology: Topology,
        settings: GatewaySettings,
        nursery: trio.Nursery,
    ) -> None:
        #: The plain sources (what a request that does not share reads).
        self.sources = sources
        self._topology = topology
        self._settings = settings
        self._nursery = nursery
        self._feeds: dict[FeedKey, Feed] = {}
        self._health: dict[str, SharedHealth] = {}
        self.counters = FeedCounters()
        self.affinity = TabletAffinity()
        #: The sources to give streamers whose request may share.
        self.directory = SharingDirectory(self, sources)

    @property
    def feeds(self) -> list[Feed]:
        return list(self._feeds.values())

    # -- who shares ---------------------------------------------------------------

    def may_share(self, request: binlogdata.VStreamRequest) -> bool:
        """Whether ``request`` may read a feed at all (not in the copy phase, sharing on)."""
        if not self._settings.share_streams or self._settings.share_max_feeds <= 0:
            return False
        if request.position == "" or request.table_last_p_ks:
            return False
        target = request.target
        if target is None:
            return False
        keyspace = self._topology.keyspaces.get(target.keyspace)
        return keyspace is None or keyspace.share

    @staticmethod
    def key_of(tablet: TabletInfo, request: binlogdata.VStreamRequest) -> FeedKey:
        target = request.target
        assert target is not None
        return (
            tablet.alias,
            target.keyspace,
            target.shard,
            int(target.tablet_type),
            bytes(request.filter) if request.filter is not None else b"",
            bytes(request.options) if request.options is not None else b"",
            bytes(request.effective_caller_id) if request.effective_caller_id is not None else b"",
        )

    # -- joining --------------------------------------------------------------

    def attach(
        self,
        key: FeedKey,
        source: ShardSource,
        request: binlogdata.VStreamRequest,
        position: str,
        *,
        handover: bool = False,
    ) -> tuple[Feed, Consumer, list[Frame]] | None:
        """Attach a shard stream at ``position`` to the feed for ``key``, if it can.

        With no feed for ``key`` a new one starts at ``position`` (unless
        this is a private stream handing over, or the hub is full). Returns
        the feed, the consumer and the events to send before the feed's (a
        ``current`` joiner's starting position), or None: read privately.
        """
        feed = self._feeds.get(key)
        if feed is None or feed.closing:
            if handover or len(self._feeds) >= self._settings.share_max_feeds:
                return None
            feed = Feed(
                key, source, _at(request, position), self._settings, self._ended, self._detached
            )
            self._feeds[key] = feed
            self.counters.feeds_opened += 1
            self.affinity.picked(key[1], key[2], key[3], key[0])
            self._nursery.start_soon(feed.run, name=f"feed {key[1]}/{key[2]} {key[0]}")
            return feed, feed.join(0, position), []
        place = self._place(feed, position)
        if place is None:
            return None
        seq, position, prelude = place
        if handover:
            self.counters.handovers += 1
        else:
            self.counters.joins += 1
        return feed, feed.join(seq, position), prelude

    def _place(self, feed: Feed, position: str) -> tuple[int, str, list[Frame]] | None:
        """Where in ``feed`` a stream at ``position`` starts: seq, position, prelude."""
        ring = feed.ring
        if position != "current":
            found = self._join_point(feed, position)
            return None if found is None else (found, position, [])
        if ring.position is None and ring.tail == 0:
            return 0, position, []  # the feed started at "current" too and has not moved yet
        if ring.position is not None and (
            ring.idle
            or (ring.last_gtid is not None and ring.lag <= self._settings.share_join_seconds)
        ):
            # Caught up (the tablet sends heartbeats, or its newest unit is
            # recent): the feed's newest position is the tablet's current one.
            _alias, keyspace, shard, *_ = feed.key
            return ring.head, ring.position, _current_start(ring, keyspace, shard)
        return None

    def can_join(self, key: FeedKey, position: str) -> bool:
        """Whether a private stream at ``position`` could attach to ``key``'s feed now."""
        feed = self._feeds.get(key)
        if feed is None or feed.closing or position in ("", "current"):
            return False
        return self._join_point(feed, position) is not None

    def settling(self, key: FeedKey, position: str) -> Feed | None:
        """``key``'s feed if a stream at ``position`` may soon join it by waiting.

        That is a feed opened less than :data:`~vsmux.mux.feed.SETTLE_SECONDS` ago that is
        still reading towards the tablet's newest events (it has not gone
        idle), where ``position`` has no place yet: in a burst of clients (a
        gateway restart, a deploy) the first one's feed usually reaches the
        others' positions within milliseconds.
        """
        feed = self._feeds.get(key)
        if feed is None or feed.closing or feed.ring.idle:
            return None
        if trio.current_time() - feed.opened >= SETTLE_SECONDS:
            return None
        return feed if self._place(feed, position) is None else None

    def _join_point(self, feed: Feed, position: str) -> int | None:
        ring = feed.ring
        seq = ring.join_point(position)
        if seq is None:
            return None
        settings = self._settings
        if ring.head - seq > settings.share_join_transactions:
            return None
        now = trio.current_time()
        if now - ring.arrived_at(seq, now) > settings.share_join_seconds:
            return None
        return seq

    def _ended(self, feed: Feed) -> None:
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]

    def _detached(self, _feed: Feed) -> None:
        self.counters.detaches += 1

    # -- health -----------------------------------------------------------------

    def health_of(self, source: ShardSource) -> SharedHealth:
        """The shared health watch of ``source``'s tablet."""
        alias = source.tablet.alias
        health = self._health.get(alias)
        # By the tablet, not the source object: a directory may hand out a new
        # source object per call for the same tablet.
        if health is None or health.tablet != source.tablet:
            if len(self._health) > 4 * max(len(self._topology.tablets), 64):
                self._forget_idle_health()
            health = SharedHealth(source, self._nursery, self._settings.share_linger_seconds)
            self._health[alias] = health
        return health

    def _forget_idle_health(self) -> None:
        for alias, health in list(self._health.items()):
            if not health.watchers:
                del self._health[alias]

    # -- what is going on ---------------------------------------------------------

    def stats(self) -> list[FeedStats]:
        """Every open feed, for metrics and the demo."""
        now = trio.current_time()
        out = []
        for feed in self._feeds.values():
            waits = feed.waits(now)
            ring = feed.ring
            _alias, keyspace, shard, tablet_type, *_ = feed.key
            out.append(
                FeedStats(
                    keyspace=keyspace,
                    shard=shard,
                    tablet_type=type_name(topodata.TabletType(tablet_type)),
                    tablet=feed.tablet,
                    consumers=len(feed.consumers),
                    position=ring.position or "",
                    lag=ring.lag,
                    wait_min=min(waits, default=0.0),
                    wait_max=max(waits, default=0.0),
                    wait_avg=math.fsum(waits) / len(waits) if waits else 0.0,
                    kept_units=len(ring),
                    kept_bytes=ring.bytes,
                    events=feed.events,
                    age=now - feed.opened,
                )
            )
        return out


class SharingDirectory:
    """A :class:`~vsmux.mux.shard_source.SourceDirectory` whose sources share feeds."""

    def __init__(self, hub: FeedHub, inner: SourceDirectory) -> None:
        self._hub = hub
        self._inner = inner

    def source_for(self, tablet: TabletInfo) -> ShardSource:
        # A SharedSource holds no state of its own: the hub keeps the feeds.
        return SharedSource(self._hub, self._inner.source_for(tablet))


@asynccontextmanager
async def open_feed_hub(
    sources: SourceDirectory, topology: Topology, settings: GatewaySettings
) -> AsyncIterator[FeedHub]:
    """A hub for the life of the ``async with`` block; leaving it closes every feed."""
    async with trio.open_nursery() as nursery:
        hub = FeedHub(sources, topology, settings, nursery)
        try:
            yield hub
        finally:
            nursery.cancel_scope.cancel()


def _at(request: binlogdata.VStreamRequest, position: str) -> binlogdata.VStreamRequest:
    """``request`` starting at ``position`` (a shallow copy; the rest is shared, read-only)."""
    if request.position == position:
        return request
    own = copy.copy(request)
    own.position = position
    return own


def _current_start(ring: FeedRing, keyspace: str, shard: str) -> list[Frame]:
    """What a ``current`` joiner gets first: a GTID at the feed's newest position and an OTHER.

    The same two events a stream opened at ``current`` starts with, so the
    client learns its starting position at once. The feed's own GTID event
    is reused when it carries that position.
    """
    assert ring.position is not None
    gtid = ring.last_gtid
    if gtid is None or gtid.header().gtid != ring.position:
        beat = ring.last_heartbeat
        when = beat.header() if beat is not None else None
        gtid = Frame.from_bytes(
            bytes(
                binlogdata.VEvent(
                    type=binlogdata.VEventType.GTID,
                    gtid=ring.position,
                    timestamp=when.timestamp if when else 0,
                    current_time=when.current_time if when else 0,
                    keyspace=keyspace,
                    shard=shard,
                )
            )
        )
    header = gtid.header()
    other = binlogdata.VEvent(
        type=binlogdata.VEventType.OTHER,
        timestamp=header.timestamp,
        current_time=header.current_time,
        keyspace=keyspace,
        shard=shard,
    )
    return [gtid, Frame.from_bytes(bytes(other))]
