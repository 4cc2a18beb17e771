"""Journal convergence bookkeeping (a reshard seen by the shard streams).

When a reshard cuts over, each source shard's tablet sends a JOURNAL naming
the participants (the old shards) and the new shards with their starting
positions. For a request, a SHARDS journal

- is ignored when none of its participants are in the stream (it is about
  someone else), and a TABLES journal is always ignored;
- is an INTERNAL error when only some participants are in the stream;
- otherwise makes every participant stop at it; the last one to arrive
  converges it: the participants leave the stream and the new shards join.

:class:`JournalTracker` keeps the stream's current shards and, per journal id,
who has arrived. It decides; the Trio layer waits and starts streamers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vsmux.core.positions import ShardKey
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata

__all__ = ["JournalTracker"]


def _names(keys: Iterable[ShardKey]) -> str:
    return ", ".join(f"{ks}/{shard}" for ks, shard in keys)


@dataclass(slots=True)
class _Convergence:
    journal: binlogdata.Journal
    participants: frozenset[ShardKey]
    arrived: set[ShardKey] = field(default_factory=set)


class JournalTracker:
    """The request's current shards and the journals they are converging on."""

    def __init__(self, shards: Iterable[ShardKey]) -> None:
        self._shards: list[ShardKey] = list(shards)
        self._open: dict[int, _Convergence] = {}

    @property
    def shards(self) -> list[ShardKey]:
        """The shards streaming now, in VGtid order."""
        return list(self._shards)

    def concerns(self, journal: binlogdata.Journal, stream: ShardKey) -> bool:
        """True if ``stream`` must stop at ``journal`` and wait for convergence.

        Raises INTERNAL when the journal's participants are only partly in the
        stream: following it would lose or duplicate data.
        """
        if journal.migration_type != binlogdata.MigrationType.SHARDS:
            return False
        conv = self._open.get(journal.id)
        if conv is None:
            participants = [(p.keyspace, p.shard) for p in journal.participants]
            present = [key for key in participants if key in self._shards]
            if not present:
                return False
            if len(present) != len(participants):
                raise VStreamError(
                    Code.INTERNAL,
                    "not all journaling participants are in the stream: "
                    f"journal {journal.id} participants [{_names(participants)}], "
                    f"stream [{_names(self._shards)}]; stream all of the participants "
                    "or none of them",
                )
            conv = self._open[journal.id] = _Convergence(journal, frozenset(participants))
        return stream in conv.participants

    def arrive(self, journal: binlogdata.Journal, stream: ShardKey) -> bool:
        """``stream`` reached ``journal``; True if it is the last participant to."""
        conv = self._open[journal.id]
        conv.arrived.add(stream)
        return conv.arrived >= conv.participants

    def participants(self, journal: binlogdata.Journal) -> list[ShardKey]:
        """The journal's participants, in the stream's order."""
        conv = self._open[journal.id]
        return [key for key in self._shards if key in conv.participants]

    def converge(self, journal: binlogdata.Journal) -> list[binlogdata.ShardGtid]:
        """Swap the participants for the journal's new shards; returns those."""
        conv = self._open.pop(journal.id)
        self._shards = [key for key in self._shards if key not in conv.participants]
        new = list(conv.journal.shard_gtids)
        self._shards.extend((sg.keyspace, sg.shard) for sg in new)
        return new
