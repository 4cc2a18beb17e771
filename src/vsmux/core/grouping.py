"""Grouping one shard's events into whole units.

A tablet may split a transaction over many responses, and may put several
transactions in one response. The client must see each transaction in one
contiguous run, so a shard's events are buffered until a terminator and then
handed on as one :class:`Unit`:

- COMMIT, DDL, OTHER and ROLLBACK end a transaction unit;
- COPY_COMPLETED ends a unit of its own kind (the sender may append the final,
  keyspace-less COPY_COMPLETED to it);
- a SHARDS JOURNAL that concerns the stream ends the shard's stream: it comes
  out as a JOURNAL unit and the grouper accepts no more events. When the
  client asked to see journals the unit holds the journal's whole transaction
  (``BEGIN, JOURNAL, GTID, COMMIT``: the buffered events, the journal, and the
  rest of its batch up to the next terminator), as current vtgate sends it;
  otherwise it holds nothing;
- HEARTBEAT events are dropped; the last one of a batch is kept in
  :attr:`TransactionGrouper.heartbeat` for skew and lag.

Events pass through unchanged: the sender renames FIELD and ROW tables to
``keyspace.table`` while packing client responses (:mod:`vsmux.wire.pack`),
one copy per event.

GTID, LASTPK and COPY_COMPLETED frames are left in place and their indexes are
listed in :attr:`Unit.controls`: the sender, which owns the positions, turns
them into VGTID events when it hands the unit to the client. Nothing here
decodes row data; only a JOURNAL is decoded.

Chunking: with a chunk size, an open transaction whose buffered bytes pass
the threshold at the end of a batch comes out as a non-final piece
(``final=False``), and from then on every batch's events of that transaction
come out as further pieces until the terminator's piece (``final=True``). The
buffer therefore never holds more than one batch beyond the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vsmux.proto import binlogdata
from vsmux.wire import Frame, decode_event
from vsmux.wire.frames import type_indexes, type_mask
from vsmux.wire.kinds import TRANSACTION_ENDS

__all__ = ["TransactionGrouper", "Unit", "UnitKind"]

_T = binlogdata.VEventType
GTID = int(_T.GTID)
HEARTBEAT = int(_T.HEARTBEAT)
LASTPK = int(_T.LASTPK)
COPY_COMPLETED = int(_T.COPY_COMPLETED)
JOURNAL = int(_T.JOURNAL)
TERMINATORS = frozenset(int(t) for t in TRANSACTION_ENDS)
# Events the sender turns into VGTIDs.
POSITION_EVENTS = frozenset((GTID, LASTPK))
# Events the grouper acts on; all others are buffered as they are.
SPECIAL = TERMINATORS | {GTID, LASTPK, COPY_COMPLETED, HEARTBEAT, JOURNAL}
_SPECIAL_MASK = type_mask(SPECIAL)


class UnitKind:
    """What ended a unit (plain ints: compared once per unit on the hot path)."""

    TRANSACTION = 0
    COPY_COMPLETED = 1
    JOURNAL = 2


@dataclass(slots=True, eq=False)
class Unit:
    """Events of one shard that the client must see contiguously."""

    frames: list[Frame]
    # Indexes into ``frames`` of the GTID, LASTPK and COPY_COMPLETED events.
    controls: list[int]
    kind: int = UnitKind.TRANSACTION
    # False for a piece of a chunked transaction that more pieces follow.
    final: bool = True
    # The journal that ended the stream, for JOURNAL units.
    journal: binlogdata.Journal | None = field(default=None, repr=False)
    # When the tablet wrote that journal (its event's timestamp, seconds; 0 unknown).
    written_at: int = 0

    @property
    def size(self) -> int:
        """Encoded bytes of the frames (not kept: only chunking needs sizes)."""
        return sum(len(f.raw) for f in self.frames)

    def last(self) -> Frame | None:
        """The unit's last frame (its terminator for a final unit), if any."""
        return self.frames[-1] if self.frames else None


class TransactionGrouper:
    """Buffers one shard stream's events and cuts them into units.

    ``concerns_stream(journal)`` decides whether a SHARDS journal is about this
    request (every participant is in it); it may raise
    :class:`vsmux.errors.VStreamError` for a journal that matches only partly.
    A grouper serves one tablet stream: after a failure, start a new one (the
    buffered, undelivered events are replayed by the tablet from the shard's
    last delivered position).
    """

    def __init__(
        self,
        *,
        chunk_size: int = 0,
        forward_journals: bool = False,
        concerns_stream: Callable[[binlogdata.Journal], bool] = lambda _journal: True,
    ) -> None:
        self._chunk_size = chunk_size
        self._forward_journals = forward_journals
        self._concerns_stream = concerns_stream
        self._pending: list[Frame] = []
        self._controls: list[int] = []
        # Bytes in _pending; kept only when chunking is on.
        self._size = 0
        self._chunking = False
        #: The last tablet HEARTBEAT of the last batch fed, if it had one.
        self.heartbeat: Frame | None = None
        #: True once a journal ended the stream; later batches are refused.
        self.finished = False

    @property
    def in_chunked_transaction(self) -> bool:
        """A piece of the open transaction has been emitted, its end has not."""
        return self._chunking

    @property
    def holding(self) -> bool:
        """Events of an unfinished unit are buffered."""
        return bool(self._pending)

    @property
    def buffered_bytes(self) -> int:
        return sum(len(f.raw) for f in self._pending)

    def feed(self, batch: list[Frame]) -> list[Unit]:
        """Units completed by ``batch`` (one or more tablet responses' events), in order.

        The loop visits only the events the grouper acts on (found by
        :func:`~vsmux.wire.frames.type_indexes`, in C when it is built); the
        ordinary ones between them (BEGIN, ROW, FIELD, ...) move as slices.
        """
        if self.finished:
            raise RuntimeError("grouper fed after the stream's journal")
        self.heartbeat = None
        units: list[Unit] = []
        pending = self._pending
        controls = self._controls
        # Where this call's additions to ``pending`` begin (for the size count).
        added_from = len(pending)
        start = 0
        for i in type_indexes(batch, _SPECIAL_MASK):
            frame = batch[i]
            kind = frame.type
            if kind in TERMINATORS or kind == COPY_COMPLETED:
                if kind == COPY_COMPLETED:
                    controls.append(len(pending) + i - start)
                    unit_kind = UnitKind.COPY_COMPLETED
                else:
                    unit_kind = UnitKind.TRANSACTION
                pending += batch[start : i + 1]
                units.append(Unit(pending, controls, unit_kind))
                pending = []
                controls = []
                added_from = 0
                start = i + 1
                self._size = 0
                self._chunking = False
            elif kind == HEARTBEAT:
                pending += batch[start:i]
                start = i + 1
                self.heartbeat = frame
            elif kind == JOURNAL:
                journal = decode_event(frame).journal
                if (
                    journal is None
                    or journal.migration_type != binlogdata.MigrationType.SHARDS
                    or not self._concerns_stream(journal)
                ):
                    # TABLES journals and journals of other streams are not ours.
                    pending += batch[start:i]
                    start = i + 1
                    continue
                if self._forward_journals:
                    # The journal's whole transaction, as current vtgate sends it:
                    # a tablet writes the journal in an autocommit transaction
                    # and sends it up to its COMMIT in one response, so the rest
                    # of the batch up to the next terminator belongs to it.
                    end = i + 1
                    while end < len(batch) and batch[end].type not in TERMINATORS:
                        if batch[end].type in POSITION_EVENTS:
                            controls.append(len(pending) + end - start)
                        end += 1
                    pending += batch[start : min(end + 1, len(batch))]
                    unit = Unit(pending, controls, UnitKind.JOURNAL)
                else:
                    unit = Unit([], [], UnitKind.JOURNAL)
                unit.journal = journal
                unit.written_at = frame.header().timestamp
                units.append(unit)
                pending = []
                controls = []
                start = len(batch)
                self.finished = True
                break
            else:  # GTID, LASTPK
                controls.append(len(pending) + i - start)
        if start < len(batch):
            pending += batch[start:] if start else batch
        if pending and self._chunk_size > 0:
            self._size += sum(len(f.raw) for f in pending[added_from:])
            if self._chunking or self._size > self._chunk_size:
                units.append(Unit(pending, controls, final=False))
                pending = []
                controls = []
                self._size = 0
                self._chunking = True
        self._pending = pending
        self._controls = controls
        return units
