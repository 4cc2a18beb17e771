"""Journal convergence bookkeeping (a reshard seen by the shard streams).

When a reshard cuts over, each source shard's tablet sends a JOURNAL naming
the participants (the old shards) and the new shards with their starting
positions. For a request, a SHARDS journal

- is ignored when none of its participants are in the stream (it is about
  someone else), and a TABLES journal is always ignored;
- is an INTERNAL error when only some participants are in the stream;
- otherwise makes every participant stop at it; the last one to arrive
  converges it: the participants leave the stream and the new shards join.

A participant arrives by reading its journal, or, when its tablet stream
started past the journal, by the *heartbeat rule*. A stream that opens at
``current`` after its shard's journal was written (or reopens at the
position such a start reported) never reads it: the journal is behind it,
and the tablet sends it only heartbeats. A stream is *unanchored* while it
has read nothing of the binlog since it opened (heartbeats are not the
binlog, nor is the ``GTID, OTHER`` a ``current`` start begins with, see
:class:`StreamAnchor`); alone it cannot tell whether its journal is
ahead of it or behind. Another participant that has arrived at a journal
naming it tells: that journal was written. A tablet sends a heartbeat only
after a heartbeat interval with nothing to send, so an unanchored stream
that hears one *after* that arrival was recorded has nothing after its
start: its journal is behind it, and it counts as arrived
(:meth:`JournalTracker.passed`). (A reshard stops writes to the old shards
before it writes their journals, so a journal written a moment after that
heartbeat has nothing before it that the stream would miss either.) The
rule rests on the order: the arrival recorded first, the heartbeat seen by
the stream's task after it; in one Trio process the synchronous record and
the synchronous question give exactly that order. A heartbeat seen before
the arrival proves nothing and is not remembered. Seen after the arrival
is not yet sent after it, though: a heartbeat held up on its way (a slow
tablet connection, a busy gateway) may come ahead of writes the old shard
made after it. So when the participant that read the journal saw its write
time (the JOURNAL event's timestamp), the heartbeat must also be from a
later second, that is sent after writes had stopped; tablets' clocks that
disagree by more than the reshard's own pause between stopping writes and
writing journals could still mislead it. A stream that reads events becomes
anchored and reaches its journal by reading it; one that hears nothing (its
tablet unreachable) keeps waiting, as before.

:class:`JournalTracker` keeps the stream's current shards and, per journal id,
who has arrived. It decides; the Trio layer waits and starts streamers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vsmux.core.positions import ShardKey
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata
from vsmux.wire import Frame

__all__ = ["JournalTracker", "StreamAnchor"]

_T = binlogdata.VEventType
_HEARTBEAT = int(_T.HEARTBEAT)
# What a tablet stream opened at ``current`` begins with: where ``current`` is.
_CURRENT_START = [int(_T.GTID), int(_T.OTHER)]


class StreamAnchor:
    """Whether one tablet stream has read anything of the binlog since it opened.

    Feed it every batch the stream delivers (:meth:`read`) until
    :attr:`anchored`. Heartbeats do not count. A stream opened at
    ``current`` (``at_current``) first gets ``GTID, OTHER``, the tablet
    saying where ``current`` is: that does not count either, since it is
    not an event written after the start.
    """

    __slots__ = ("_start_due", "anchored")

    def __init__(self, at_current: bool) -> None:
        #: True once the stream read an event of the binlog after its start.
        self.anchored = False
        # The ``GTID, OTHER`` of a current start may still come.
        self._start_due = at_current

    def read(self, batch: list[Frame]) -> None:
        """Note one batch of the stream's events."""
        kinds = [frame.type for frame in batch if frame.type != _HEARTBEAT]
        if not kinds:
            return
        if self._start_due and kinds[:2] == _CURRENT_START:
            del kinds[:2]
        self._start_due = False
        if kinds:
            self.anchored = True


def _names(keys: Iterable[ShardKey]) -> str:
    return ", ".join(f"{ks}/{shard}" for ks, shard in keys)


@dataclass(slots=True)
class _Convergence:
    journal: binlogdata.Journal
    participants: frozenset[ShardKey]
    arrived: set[ShardKey] = field(default_factory=set)
    # The earliest time (tablet seconds) a participant read it written at; 0: unknown.
    written_at: int = 0


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

    def arrive(self, journal: binlogdata.Journal, stream: ShardKey, written_at: int = 0) -> bool:
        """``stream`` reached ``journal``; True if it is the last participant to.

        ``written_at`` is the JOURNAL event's timestamp when ``stream`` read
        it (0 when it arrived by the heartbeat rule or the tablet sent none).
        """
        conv = self._open[journal.id]
        conv.arrived.add(stream)
        if written_at and (not conv.written_at or written_at < conv.written_at):
            conv.written_at = written_at
        return conv.arrived >= conv.participants

    def passed(self, stream: ShardKey, heard_at: int = 0) -> binlogdata.Journal | None:
        """The journal an unanchored ``stream`` has passed, now that it heard a heartbeat.

        Call it when ``stream``'s tablet stream, having read nothing of the
        binlog since it opened, delivers a tablet heartbeat (see the module
        docstring). Returns an open journal naming ``stream`` that another
        participant has already arrived at, for the stream to arrive at as
        if it had read it; None if there is none (no reshard, or no other
        participant there yet: the stream reads on).

        ``heard_at`` is the heartbeat's timestamp. When the journal's write
        time is known, the heartbeat must be from a later second: a reshard
        stops writes before it writes any journal, so a heartbeat sent after
        a journal was written has nothing of the old shard behind it, while
        one sent earlier may have been delayed on its way past the writes
        that followed it.
        """
        for conv in self._open.values():
            if stream in conv.participants and stream not in conv.arrived and conv.arrived:
                if conv.written_at and heard_at <= conv.written_at:
                    return None  # not shown to be after the journal yet
                return conv.journal
        return None

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
