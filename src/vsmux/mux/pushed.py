"""What a shard stream does with a batch a shared source pushes to it.

A feed (:mod:`vsmux.mux.feed`) hands new units to the shard streams waiting
on it from its own task, through the :data:`~vsmux.mux.shard_source.BatchSink`
each left (:class:`~vsmux.mux.shard_source.PushingSource`). The sink built
here does what the streamer's own loop would do with the batch, when that is
only grouping it and putting its whole units into the request's channel
without a wait:

- it declines (returns False, nothing changed) while the tablet stream has
  read nothing of the binlog (the streamer must see those batches itself,
  heartbeats included: the heartbeat rule of :mod:`vsmux.core.journal`),
  when another shard holds the send gate, the batch has a JOURNAL (its unit
  may end the stream, which the streamer's loop handles), or the channel is
  full; the streamer is then woken and reads the batch itself;
- requests with ``minimize_skew`` or chunked transactions get no sink at all
  (their puts wait on gates);
- units the feed prepared (:mod:`vsmux.core.prepared`) go into the parcel
  as they are; the rest are grouped as the streamer would group them;
- when the request's sender waits with nothing queued or on its way to it,
  the parcel goes to :meth:`~vsmux.mux.sender.Sender.deliver_now`, which
  packs and writes it from here; what it cannot finish (a write that must
  wait, a packing error) comes back as an item for the channel.

Units taken after the request ended are dropped with it, as units not yet
queued are. The sink never waits and never raises.
"""

from __future__ import annotations

import trio

from vsmux.core.grouping import TransactionGrouper, Unit
from vsmux.core.journal import StreamAnchor
from vsmux.core.metrics import Labels
from vsmux.core.positions import ShardKey
from vsmux.core.prepared import PreparedUnit
from vsmux.core.retry import ShardRetryPolicy
from vsmux.mux.channel_room import channel_room
from vsmux.mux.context import RequestContext
from vsmux.mux.items import Item, Parcel
from vsmux.mux.shard_source import BatchSink
from vsmux.proto import binlogdata
from vsmux.wire import Frame
from vsmux.wire.frames import type_indexes, type_mask

__all__ = ["sink_for"]

_JOURNAL_MASK = type_mask({int(binlogdata.VEventType.JOURNAL)})


def sink_for(
    ctx: RequestContext,
    key: ShardKey,
    labels: Labels,
    tablet: str,
    channel: trio.MemorySendChannel[Item],
    grouper: TransactionGrouper,
    policy: ShardRetryPolicy,
    anchor: StreamAnchor,
) -> BatchSink | None:
    """The sink of one tablet stream of shard ``key`` (``tablet``), or None (see the module doc)."""
    if ctx.skew is not None or ctx.resolved.flags.transaction_chunk_size > 0:
        return None
    gate = ctx.gate
    liveness = ctx.liveness
    deliver_now = ctx.deliver_now
    room = channel_room(channel)

    def take(batch: list[list[Frame] | PreparedUnit]) -> bool:
        owner = gate.owner
        if not anchor.anchored or (owner is not None and owner != key) or grouper.finished:
            return False
        for part in batch:
            # A prepared unit has no JOURNAL (core.prepared).
            if not isinstance(part, PreparedUnit) and type_indexes(part, _JOURNAL_MASK):
                return False
        queued, full, receivers = room()
        if full:
            return False
        policy.event_received()
        liveness.touch()
        # No JOURNAL, so nothing to decode or raise. A feed hands over whole
        # units, so the grouper holds nothing before a prepared unit, which
        # is then the unit it would have cut.
        units: list[Unit | PreparedUnit] = []
        for part in batch:
            if not isinstance(part, PreparedUnit):
                units += grouper.feed(part)
            elif grouper.holding:
                units += grouper.feed(part.frames)
            else:
                units.append(part)
        if not units:
            return True
        parcel = Parcel(key, labels, units, tablet)
        item: Item | None = parcel
        if deliver_now is not None and not queued and receivers:
            # The sender waits with nothing queued or on its way to it.
            item = deliver_now(parcel)
        if item is not None:
            try:
                channel.send_nowait(item)
            except trio.BrokenResourceError:
                pass  # the sender has returned: the request is ending
        return True

    return take
