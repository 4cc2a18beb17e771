"""A tablet as shard streamers see it when streams are shared.

:class:`SharedSource` is a :class:`~vsmux.mux.shard_source.ShardSource`, so a
streamer cannot tell it from the tablet: ``vstream`` yields batches of
events in the tablet's order and ends or fails as the tablet's stream would.
Behind it, one shard stream moves between two ways of reading:

- **attached** to the hub's feed for its key, reading the feed's ring from
  its own position (:class:`~vsmux.mux.feed.Feed`);
- **private**: a stream of its own from the tablet, used when no feed keeps
  its position (it is too far behind or ahead, or the hub is at
  ``share_max_feeds``), and after the feed detached it as a straggler. After
  every whole unit it asks the hub whether a feed now keeps its position
  within the join distance, and if so closes its stream and attaches there.

A stream that arrives while a feed opened less than
:data:`~vsmux.mux.feed.SETTLE_SECONDS` ago has not reached its position
yet (or, at ``current``, has not caught up) waits for it until then, so a
burst of clients, at ``current`` or resuming near the head, joins one feed
instead of opening a stream each.

Both ways hand the streamer whole units only, and every switch happens
between two units at the position the consumer has read up to, so nothing
is lost or repeated. A request in the copy phase (position ``""`` or
``table_last_p_ks``) never shares: it always reads privately.

Cancellation, or leaving the ``async with``, detaches from the feed (which
lingers for others) or closes the private stream before returning.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import TYPE_CHECKING

import trio

from vsmux.core.feed_reader import FeedReader
from vsmux.core.feed_ring import FeedRing
from vsmux.mux.feed import READ_BYTES, SETTLE_SECONDS, Detached
from vsmux.mux.shard_source import BatchSink, ShardSource
from vsmux.proto import binlogdata, query
from vsmux.topology import TabletInfo
from vsmux.wire import Frame

if TYPE_CHECKING:
    from vsmux.mux.feed_hub import FeedHub

__all__ = ["SharedSource"]


class SharedSource:
    """A tablet's streams through the feed hub; see the module docstring."""

    def __init__(self, hub: FeedHub, inner: ShardSource) -> None:
        self._hub = hub
        self._inner = inner

    @property
    def tablet(self) -> TabletInfo:
        return self._inner.tablet

    def stream_health(
        self,
    ) -> AbstractAsyncContextManager[AsyncIterator[query.StreamHealthResponse]]:
        return self._hub.health_of(self._inner).watch()

    def vstream(
        self, request: binlogdata.VStreamRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
        if not self._hub.may_share(request):
            return self._inner.vstream(request)
        return self._shared(request, None)

    def vstream_pushing(
        self, request: binlogdata.VStreamRequest, sink: BatchSink
    ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
        """``vstream``; while attached to a feed, new units may go to ``sink``.

        See :class:`~vsmux.mux.shard_source.PushingSource`. A private stream
        never uses the sink: its batches are read as usual.
        """
        if not self._hub.may_share(request):
            return self._inner.vstream(request)
        return self._shared(request, sink)

    @asynccontextmanager
    async def _shared(
        self, request: binlogdata.VStreamRequest, sink: BatchSink | None
    ) -> AsyncIterator[AsyncIterator[list[Frame]]]:
        async with aclosing(self._batches(request, sink)) as batches:
            yield batches

    async def _batches(
        self, request: binlogdata.VStreamRequest, sink: BatchSink | None
    ) -> AsyncGenerator[list[Frame], None]:
        hub = self._hub
        inner = self._inner
        key = hub.key_of(inner.tablet, request)
        position = request.position
        went_private = False  # from then on, only hand over to a feed that exists
        waited = False
        while True:
            attached = hub.attach(key, inner, request, position, handover=went_private)
            if attached is None and not waited and not went_private:
                # A feed that opened a moment ago may not have reached our
                # position (or, for "current", the tablet's newest) yet:
                # clients arriving in a burst wait for it rather than each
                # opening a stream of its own.
                waited = True
                settling = hub.settling(key, position)
                if settling is not None:
                    with trio.move_on_at(settling.opened + SETTLE_SECONDS):
                        while hub.settling(key, position) is settling:
                            await settling.changed()
                    continue
            if attached is not None:
                feed, consumer, prelude = attached
                try:
                    if prelude:
                        yield prelude
                    while True:
                        frames = await feed.next_frames(consumer, sink)
                        if frames is None:
                            return  # the tablet ended the stream
                        yield frames
                except Detached:
                    position = consumer.reader.position
                finally:
                    feed.leave(consumer)
            # A stream of our own until a feed keeps our position.
            went_private = True
            hub.counters.private_streams += 1
            own = copy.copy(request)
            own.position = position
            cut = FeedRing(position, max_bytes=0)
            reader = FeedReader(0, position, {}, 0)
            async with inner.vstream(own) as batches:
                handover = False
                async for batch in batches:
                    if not batch:
                        continue
                    cut.add(batch, 0.0)
                    while frames := reader.read(cut, READ_BYTES):
                        cut.evict(reader.cursor)
                        yield frames
                    if reader.position and hub.can_join(key, reader.position):
                        handover = True
                        break
                if not handover:
                    return  # the tablet ended the stream
            position = reader.position
