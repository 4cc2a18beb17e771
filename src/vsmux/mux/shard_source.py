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
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from vsmux.proto import binlogdata, query
from vsmux.topology import TabletInfo
from vsmux.wire import Frame

__all__ = ["ShardSource", "SourceDirectory"]


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


class SourceDirectory(Protocol):
    """Maps a tablet of the topology to the source that reaches it."""

    def source_for(self, tablet: TabletInfo) -> ShardSource: ...
