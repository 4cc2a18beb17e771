"""What every task of one request shares.

One :class:`RequestContext` per request, built by the session. Streamers read
the position book (the sender is its only writer) and use the request-wide
gates; ``start_streamer`` lets the last participant of a journal start the
new shards' streamers in the request's nursery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from vsmux.core.metrics import Labels, Metrics
from vsmux.core.positions import PositionBook, ShardKey
from vsmux.core.resolve import ResolvedRequest
from vsmux.core.settings import GatewaySettings
from vsmux.mux.failover_wait import FailoverBuffers
from vsmux.mux.gate import SendGate
from vsmux.mux.items import Item, Parcel
from vsmux.mux.journal_wait import Convergence
from vsmux.mux.liveness_wait import Liveness
from vsmux.mux.picking_wait import TabletPicker
from vsmux.mux.shard_source import SourceDirectory
from vsmux.mux.skew_wait import SkewGate
from vsmux.proto import binlogdata

__all__ = ["DeliverNow", "RequestContext", "StartStreamer"]

StartStreamer = Callable[[binlogdata.ShardGtid, trio.MemorySendChannel[Item]], None]
DeliverNow = Callable[[Parcel], Item | None]


@dataclass(slots=True, eq=False)
class RequestContext:
    """The resolved request and the state its tasks share, one per request.

    The session builds it and hands it to every shard streamer, including
    the ones a journal starts later. Streamers read the position ``book``
    (the sender is its only writer), reach tablets through ``picker`` and
    ``sources``, wait at ``gate``, ``skew`` and ``convergence``, and touch
    ``liveness``; PRIMARY streams wait out a failover in ``failover``, the
    gateway's buffers (shared with other requests). ``start_streamer``
    starts a new shard's streamer in the request's nursery, so it is
    cancelled with the request.

    It owns no task and no resource: cancelling the request's nursery ends
    everything that uses it.
    """

    resolved: ResolvedRequest
    settings: GatewaySettings
    metrics: Metrics
    sources: SourceDirectory
    picker: TabletPicker
    book: PositionBook
    convergence: Convergence
    gate: SendGate
    skew: SkewGate | None  # None unless minimize_skew
    liveness: Liveness
    start_streamer: StartStreamer
    type_name: str
    failover: FailoverBuffers
    #: The sender's :meth:`~vsmux.mux.sender.Sender.deliver_now`, for shard
    #: streams whose shared source hands them units from its own task.
    deliver_now: DeliverNow | None = None

    def labels(self, key: ShardKey) -> Labels:
        return (key[0], key[1], self.type_name)
