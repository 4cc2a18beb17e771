"""The interface between shard streamers and tablets.

A streamer never sees gRPC or the simulator: it asks a
:class:`SourceDirectory` for the :class:`ShardSource` of a tablet and opens
streams on it. A shared-upstream layer or a failover buffer can later wrap a
``ShardSource`` without the streamer noticing.

Rules every implementation keeps:

- ``vstream`` yields one batch (a list of frames) per tablet response, in the
  tablet's order. It ends normally when the tablet ends the stream, and raises
  :class:`vsmux.errors.VStreamError` carrying the tablet's code and message
  (prefixed with the tablet alias) when the tablet fails.
- Leaving the ``async with`` (normally, by error or by cancellation) closes
  the upstream stream before returning; nothing keeps running afterwards.
- Batches are bounded by the tablet's response size: a source never buffers
  without bound.

A source that reads one stream for many streamers (a shared feed) may also be
a :class:`PushingSource`: it hands a batch straight to a streamer's
:data:`BatchSink`, from its own task, instead of waking the streamer to read
it. That saves waking the streamer's task for every batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from vsmux.core.prepared import PreparedUnit
from vsmux.proto import binlogdata, query
from vsmux.topology import TabletInfo
from vsmux.wire import Frame

__all__ = ["BatchSink", "PushingSource", "ShardSource", "SourceDirectory"]

#: Takes the next batch synchronously, in place of the streamer's own read:
#: True when it took the batch whole, False when it left it untouched (the
#: source then gives it to the streamer's read as usual). It never raises
#: and never waits. A batch is a list of whole units (lists of events) and
#: units prepared once for every sink (:mod:`vsmux.core.prepared`), in order;
#: a sink never changes any of them.
BatchSink = Callable[[list[list[Frame] | PreparedUnit]], bool]


class ShardSource(Protocol):
    """One tablet's streams."""

    @property
    def tablet(self) -> TabletInfo: ...

    def vstream(
        self, request: binlogdata.VStreamRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
        """Open ``/queryservice.Query/VStream``; iterate for batches of frames."""
        ...

    def stream_health(
        self,
    ) -> AbstractAsyncContextManager[AsyncIterator[query.StreamHealthResponse]]:
        """Open ``/queryservice.Query/StreamHealth``; iterate for health reports."""
        ...


@runtime_checkable
class PushingSource(ShardSource, Protocol):
    """A source that can hand batches to the streamer without waking it."""

    def vstream_pushing(
        self, request: binlogdata.VStreamRequest, sink: BatchSink
    ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
        """``vstream``, where batches may go to ``sink`` instead of the iterator.

        ``sink`` is called only while the streamer waits in the iterator for
        its next batch, so the streamer's state is between two batches; the
        batches it takes are not yielded. Order is kept: a batch the sink
        leaves is the iterator's next, and nothing is offered to the sink
        until it has been read.
        """
        ...


class SourceDirectory(Protocol):
    """Maps a tablet of the topology to the source that reaches it."""

    def source_for(self, tablet: TabletInfo) -> ShardSource: ...
