"""One shared tablet stream (a *feed*) and its consumers: the Trio side of the ring.

A :class:`Feed` reads one ``/queryservice.Query/VStream`` for every shard
stream that asks the same tablet for the same events from close positions
(:mod:`vsmux.mux.feed_hub` decides who shares). Its task runs in the hub's
nursery, owned by the server, not by any request:

- it cuts the tablet's batches into whole units in a
  :class:`~vsmux.core.feed_ring.FeedRing` and wakes its consumers;
- consumers read at their own pace with a
  :class:`~vsmux.core.feed_reader.FeedReader`; the feed never copies a unit
  per consumer. A consumer waiting for new units may leave a *sink*
  (:data:`~vsmux.mux.shard_source.BatchSink`): the feed then reads for it
  and hands the events to the sink from its own task, and wakes the
  consumer only when the sink leaves them (they become its next read) or
  when it is behind. A unit that sinks take is packed once for all of them
  (:mod:`vsmux.core.prepared`);
- the ring drops old units only when no attached consumer still needs them.
  When the ring is full and a consumer still needs its oldest unit, the feed
  waits for it, but never longer in total than ``share_straggler_seconds``
  per consumer (counted until it has caught up): then that consumer is
  *detached* and goes on from its own position on a private stream
  (:mod:`vsmux.mux.feed_source`), and the feed reads on. One that started
  at ``current`` and has read no position yet goes on from ``current``:
  it has been given nothing, so that is still where it asked to start;
- when the last consumer has left, the feed lingers
  ``share_linger_seconds`` for a new one, then closes its tablet stream.

When the tablet stream fails, the error is kept and every consumer gets it
after the units that came before it, exactly as a stream of its own would
have ended; the feed is gone from the hub at once, so the consumers' retries
open one new feed (on the next tablet) instead of one stream each.

Cancellation (the hub closing) closes the tablet stream; consumers still
reading then get UNAVAILABLE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from vsmux.core.feed_reader import FeedReader
from vsmux.core.feed_ring import FeedEntry, FeedRing
from vsmux.core.prepared import PreparedUnit, prepare_unit, unprepared
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.mux.shard_source import BatchSink, ShardSource
from vsmux.proto import binlogdata
from vsmux.wire import Frame, FrameError

__all__ = ["SETTLE_SECONDS", "Consumer", "Detached", "Feed", "FeedKey"]

log = logging.getLogger(__name__)

#: What must match for two shard streams to share a feed: tablet alias,
#: keyspace, shard, tablet type, the encoded filter, the encoded options and
#: the encoded effective caller id (tablets may apply table ACLs per caller).
FeedKey = tuple[str, str, str, int, bytes, bytes, bytes]

#: How long after a feed opens a stream that cannot join it yet waits for it
#: instead of reading on its own. A tablet answers a new stream within
#: milliseconds; a feed still far from a joiner after this is catching up
#: from far back, or the joiner is behind what it keeps.
SETTLE_SECONDS = 1.0


# Bytes of whole units a consumer takes from the ring per read: about one
# tablet response (vttablet's default vstream_packet_size is 250,000).
READ_BYTES = 256 * 1024


class Detached(Exception):
    """The feed let this consumer go; it continues from its reader's position."""


@dataclass(slots=True, eq=False)
class Consumer:
    """One shard stream reading a feed."""

    reader: FeedReader
    # Seconds the feed has waited for this consumer since it last caught up.
    stalled: float = 0.0
    detached: bool = False
    # While its task waits in next_frames: what wakes it, and its sink, if any.
    wakeup: trio.Event | None = None
    sink: BatchSink | None = None
    # Events read for it that its sink left: its next read, before anything else.
    pending: list[Frame] | None = None


class Feed:
    """One tablet stream and its consumers; see the module docstring.

    ``on_done`` is called once, when the tablet stream has ended (normally,
    with an error, or closed), so the hub stops offering the feed.
    """

    def __init__(
        self,
        key: FeedKey,
        source: ShardSource,
        request: binlogdata.VStreamRequest,
        settings: GatewaySettings,
        on_done: Callable[[Feed], None],
        on_detach: Callable[[Feed], None],
    ) -> None:
        self.key = key
        self.source = source
        self._request = request
        self._settings = settings
        self._on_done = on_done
        self._on_detach = on_detach
        self.ring = FeedRing(request.position, settings.share_ring_bytes)
        self.consumers: set[Consumer] = set()
        self.opened = trio.current_time()
        #: True once the tablet stream is over; ``error`` says how it ended.
        self.done = False
        self.error: VStreamError | None = None
        self.events = 0
        self._pumped = False  # the tablet stream has ended
        self._scope = trio.CancelScope()
        self._changed = trio.Event()  # new units, a heartbeat, or the end
        self._advanced = trio.Event()  # a consumer read on or left
        self._waiting_for_room = False  # the feed waits on _advanced
        self._membership = trio.Event()  # a consumer joined or left

    @property
    def tablet(self) -> str:
        return self.source.tablet.alias

    @property
    def closing(self) -> bool:
        """True once the tablet stream has ended or is being closed: no one may join.

        ``done`` comes a moment later, when the feed's task has finished; a
        consumer attached in between would only get the end (or "closed").
        """
        return self.done or self._pumped or self._scope.cancel_called

    # -- consumers ------------------------------------------------------------

    def join(self, seq: int, position: str) -> Consumer:
        """Attach a consumer that reads entry ``seq`` next, ``position`` being before it."""
        ring = self.ring
        reader = FeedReader(seq, position, ring.fields_at(seq), ring.heartbeats)
        consumer = Consumer(reader)
        self.consumers.add(consumer)
        self._wake_membership()
        return consumer

    def leave(self, consumer: Consumer) -> None:
        """Detach ``consumer`` (it left, or was let go); idempotent."""
        if consumer in self.consumers:
            self.consumers.discard(consumer)
            self._wake_membership()
            self._wake_advanced()

    async def next_frames(
        self, consumer: Consumer, sink: BatchSink | None = None
    ) -> list[Frame] | None:
        """The consumer's next events (whole units, or a heartbeat).

        None when the tablet stream ended normally, after every unit before
        the end; its error, raised, when it failed. Raises :class:`Detached`
        when the feed has let the consumer go (after the events its sink
        left). While it waits, ``sink`` may take new events instead (see
        the module docstring); what it takes is not returned. Cancellation
        leaves the consumer attached (the caller leaves in its ``finally``).
        """
        ring = self.ring
        reader = consumer.reader
        while True:
            frames = consumer.pending
            if frames is not None:
                consumer.pending = None
                return frames
            if consumer.detached:
                raise Detached
            frames = reader.read(ring, READ_BYTES)
            if frames:
                if reader.cursor >= ring.head:
                    consumer.stalled = 0.0
                self._wake_advanced()
                return frames
            if self.done:
                if self.error is not None:
                    # A fresh exception per consumer: one instance raised in many
                    # tasks would chain their tracebacks together.
                    raise VStreamError(self.error.code, self.error.message)
                return None
            wakeup = consumer.wakeup = trio.Event()
            consumer.sink = sink
            try:
                await wakeup.wait()
            finally:
                consumer.wakeup = None
                consumer.sink = None

    async def changed(self) -> None:
        """Return at the feed's next change: new units, a heartbeat, or its end."""
        await self._changed.wait()

    def waits(self, now: float) -> list[float]:
        """How long each consumer's next unit has been waiting for it, in seconds."""
        ring = self.ring
        return [now - ring.arrived_at(c.reader.cursor, now) for c in self.consumers]

    # -- the tablet stream ------------------------------------------------------

    async def run(self) -> None:
        """Read the tablet stream until it ends, fails, or the feed is closed.

        Never raises (a bug is logged and becomes the consumers' INTERNAL
        error), so one feed cannot take the hub's nursery down. Cancellation
        closes the tablet stream; consumers left get UNAVAILABLE.
        """
        closed = VStreamError(
            Code.UNAVAILABLE,
            f"the shared stream from tablet {self.tablet} was closed (the gateway is stopping); "
            "resume from the last vgtid received",
        )
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._linger)
                    self.error = await self._pump()
                    self._pumped = True
                    nursery.cancel_scope.cancel()
            if self._scope.cancelled_caught and self.consumers:
                self.error = closed
        except trio.Cancelled:
            self.error = closed
            raise
        except Exception as exc:  # a bug: keep the hub alive, fail the consumers clearly
            log.exception("shared stream from tablet %s failed unexpectedly", self.tablet)
            self.error = VStreamError(Code.INTERNAL, f"shared stream failed unexpectedly: {exc!r}")
        finally:
            self.done = True
            for consumer in self.consumers:
                self._wake(consumer)
            self._wake_changed()
            self._on_done(self)

    async def _pump(self) -> VStreamError | None:
        ring = self.ring
        try:
            async with self.source.vstream(self._request) as batches:
                async for batch in batches:
                    if not batch:
                        continue
                    self.events += len(batch)
                    added = ring.add(batch, trio.current_time())
                    if added or ring.idle:
                        self._hand_out()
                        self._wake_changed()
                    if added:
                        await self._make_room()
        except VStreamError as err:
            return err
        return None

    async def _make_room(self) -> None:
        """Evict what no consumer needs; wait for (or detach) consumers holding the tail."""
        ring = self.ring
        settings = self._settings
        bound = settings.share_straggler_seconds
        while True:
            keep_from = min((c.reader.cursor for c in self.consumers), default=ring.head)
            # Nothing older than a joiner may join at is kept for joiners.
            too_old = trio.current_time() - settings.share_join_seconds
            if not ring.evict(
                keep_from, max_units=settings.share_join_transactions, arrived_before=too_old
            ):
                return
            blockers = [c for c in self.consumers if c.reader.cursor <= ring.tail]
            overdue = [c for c in blockers if c.stalled >= bound - 1e-9]
            if overdue:
                for consumer in overdue:
                    self._detach(consumer)
                continue
            budget = bound - max(c.stalled for c in blockers)
            started = trio.current_time()
            self._waiting_for_room = True
            try:
                with trio.move_on_after(budget):
                    await self._advanced.wait()
            finally:
                self._waiting_for_room = False
            waited = trio.current_time() - started
            for consumer in blockers:
                consumer.stalled += waited

    def _detach(self, consumer: Consumer) -> None:
        consumer.detached = True
        self.leave(consumer)
        self._on_detach(self)
        self._wake(consumer)
        log.info(
            "shared stream from tablet %s: a consumer %d units behind was detached to a "
            "private stream after holding the stream up for %.1fs",
            self.tablet,
            consumer.reader.behind(self.ring),
            consumer.stalled,
        )

    async def _linger(self) -> None:
        """Close the feed once it has had no consumer for ``share_linger_seconds``."""
        linger = self._settings.share_linger_seconds
        while True:
            if not self.consumers:
                deadline = trio.current_time() + linger
                while not self.consumers:
                    if trio.current_time() >= deadline:
                        self._scope.cancel()
                        return
                    with trio.move_on_at(deadline):
                        await self._membership.wait()
            await self._membership.wait()

    # -- wake-ups -------------------------------------------------------------

    def _hand_out(self) -> None:
        """New events: give each waiting consumer's sink its read, or wake the consumer.

        A unit that several sinks take is prepared once (:mod:`vsmux.core.prepared`)
        and given to all of them in that form; the prepared copies are dropped
        when this returns, so the ring's bound still counts what it keeps.
        """
        ring = self.ring
        prepared: dict[int, PreparedUnit | None] = {}
        for consumer in self.consumers:
            sink = consumer.sink
            if sink is not None and consumer.pending is None:
                reader = consumer.reader
                parts = reader.read_parts(ring, READ_BYTES)
                if not parts:
                    continue
                batch = [
                    self._prepared(part, prepared) if isinstance(part, FeedEntry) else part
                    for part in parts
                ]
                if not sink(batch):
                    consumer.pending = unprepared(batch)
                elif reader.cursor >= ring.head:
                    consumer.stalled = 0.0
                    continue
                # Left by its sink, or behind: its own task reads on.
            self._wake(consumer)

    def _prepared(
        self, entry: FeedEntry, prepared: dict[int, PreparedUnit | None]
    ) -> PreparedUnit | list[Frame]:
        """``entry`` prepared for this feed's clients, or its events when it cannot be."""
        seq = entry.seq
        if seq in prepared:
            unit = prepared[seq]
        else:
            try:
                unit = prepare_unit(entry.frames, self.key[1], self._settings.max_response_bytes)
            except FrameError:
                unit = None  # the usual path reports the malformed event
            prepared[seq] = unit
        return entry.frames if unit is None else unit

    @staticmethod
    def _wake(consumer: Consumer) -> None:
        """Wake ``consumer``'s task if it waits; no sink is used until it has run."""
        wakeup = consumer.wakeup
        if wakeup is not None:
            consumer.sink = None
            wakeup.set()

    def _wake_changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _wake_advanced(self) -> None:
        # Called on every read: a plain flag, not Event.statistics(), says
        # whether anyone waits.
        if self._waiting_for_room:
            self._advanced.set()
            self._advanced = trio.Event()

    def _wake_membership(self) -> None:
        self._membership.set()
        self._membership = trio.Event()
