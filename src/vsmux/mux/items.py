"""What travels from the shard streamers to the sender.

One memory channel per request; every streamer holds a clone of its send end.
Items are whole units or control messages, never single events:

- :class:`Parcel`: whole units of one shard, in order (the common item);
- :class:`Barrier`: "tell me once everything I sent before this is delivered"
  (a streamer about to retry reads its position only after that);
- :class:`JournalSwap`: a journal converged; swap its participants for the
  new shards in the position book, after their last units;
- :class:`Stop`: ``stop_on_reshard`` reached convergence; end the request
  cleanly once everything before it is delivered;
- :class:`Packed`, :class:`Failed`: what is left of a parcel the sender's
  :meth:`~vsmux.mux.sender.Sender.deliver_now` handled outside its task:
  responses whose write must wait, or the error packing raised.

Because the channel is one FIFO, an item sent after another is handled after
it, whichever streamers sent them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import trio

from vsmux.core.grouping import Unit
from vsmux.core.metrics import Labels
from vsmux.core.positions import ShardKey
from vsmux.core.prepared import PreparedUnit
from vsmux.errors import VStreamError
from vsmux.proto import binlogdata

__all__ = ["Barrier", "Failed", "Item", "JournalSwap", "Packed", "Parcel", "Stop"]


@dataclass(slots=True, eq=False)
class Parcel:
    """Whole units of one shard, in order: the common item in the channel.

    A shard streamer sends one per tablet batch (with ``minimize_skew`` or a
    chunked transaction, one per unit or piece). The sender applies the
    units' position events to the book and packs each unit into its own
    responses. ``labels`` are the shard's metric labels.
    """

    key: ShardKey
    labels: Labels
    # Units a feed prepared for its clients are never changed (core.prepared).
    units: Sequence[Unit | PreparedUnit]
    # Alias of the tablet the units came from, for error messages.
    tablet: str = ""


@dataclass(slots=True, eq=False)
class Barrier:
    """Asks the sender to set ``delivered`` once everything queued before it is sent.

    A shard streamer sends one before it retries and waits on the Event, so
    it reads its restart position from the book only once its queued units
    have reached the client (``docs/vitess.md`` §6.5). A streamer cancelled
    while waiting just stops waiting; the sender setting the Event later is
    harmless.
    """

    delivered: trio.Event


@dataclass(slots=True, eq=False)
class JournalSwap:
    """A converged reshard journal: put the new shards in place of its participants.

    The last participant's streamer sends it (unless ``stop_on_reshard``)
    right before it starts the new shards' streamers. The sender applies it
    to the position book in channel order: units queued before it carry the
    old shards' positions, units after it the new ones'.
    """

    participants: list[ShardKey]
    shard_gtids: list[binlogdata.ShardGtid]


@dataclass(slots=True, eq=False)
class Stop:
    """End the request cleanly (OK status): ``stop_on_reshard`` reached its journal.

    The last participant of a converged journal sends it instead of a
    :class:`JournalSwap`. The sender returns once everything queued before it
    is sent, the journal's transaction included, and the session then
    cancels the remaining tasks.
    """


@dataclass(slots=True, eq=False)
class Packed:
    """Responses already packed (their positions are in the book): send them as they are.

    Queued by a :meth:`~vsmux.mux.sender.Sender.deliver_now` whose write
    would have waited; nothing else was queued before it.
    """

    bodies: list[bytes]


@dataclass(slots=True, eq=False)
class Failed:
    """Packing a parcel outside the sender's task failed: the sender raises ``error``."""

    error: VStreamError


Item = Parcel | Barrier | JournalSwap | Stop | Packed | Failed
