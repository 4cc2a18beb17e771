"""What travels from the shard streamers to the sender.

One memory channel per request; every streamer holds a clone of its send end.
Items are whole units or control messages, never single events:

- :class:`Parcel`: whole units of one shard, in order (the common item);
- :class:`Barrier`: "tell me once everything I sent before this is delivered"
  (a streamer about to retry reads its position only after that);
- :class:`JournalSwap`: a journal converged; swap its participants for the
  new shards in the position book, after their last units;
- :class:`Stop`: ``stop_on_reshard`` reached convergence; end the request
  cleanly once everything before it is delivered.

Because the channel is one FIFO, an item sent after another is handled after
it, whichever streamers sent them.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from vsmux.core.grouping import Unit
from vsmux.core.metrics import Labels
from vsmux.core.positions import ShardKey
from vsmux.proto import binlogdata

__all__ = ["Barrier", "Item", "JournalSwap", "Parcel", "Stop"]


@dataclass(slots=True, eq=False)
class Parcel:
    key: ShardKey
    labels: Labels
    units: list[Unit]
    # Alias of the tablet the units came from, for error messages.
    tablet: str = ""


@dataclass(slots=True, eq=False)
class Barrier:
    delivered: trio.Event


@dataclass(slots=True, eq=False)
class JournalSwap:
    participants: list[ShardKey]
    shard_gtids: list[binlogdata.ShardGtid]


@dataclass(slots=True, eq=False)
class Stop:
    pass


Item = Parcel | Barrier | JournalSwap | Stop
