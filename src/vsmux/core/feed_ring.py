"""A shared upstream stream's memory: its recent whole units, findable by position.

A *feed* (:mod:`vsmux.mux.feed`) reads one tablet stream for many consumers.
Its :class:`FeedRing` cuts the tablet's batches into whole units (a
transaction, DDL or OTHER up to its terminator, the same cut the gateway's
grouper makes) and keeps the most recent ones, bounded by bytes, each with
the shard position it leaves the stream at. A consumer whose position is the
position before some kept unit can join there and miss nothing; the feed
decides when units may go (none that an attached consumer still has to read,
see :meth:`FeedRing.evict`).

FIELD events are part of a stream's state: a tablet sends a table's FIELD
before its first row *on that stream* and after a schema change. A consumer
joining mid-stream has not seen the FIELDs sent before it joined, so each
entry remembers the FIELD in force for every table before it
(:attr:`FeedEntry.fields_before`, shared between entries until a FIELD
changes it); :mod:`vsmux.core.feed_reader` puts the missing ones in front of
the consumer's first row of each table.

HEARTBEATs are not kept: the ring counts them and keeps the latest, which
readers that are caught up pass on, so an idle feed still shows its
consumers that the tablet is alive.

Everything here is synchronous and never decodes rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from vsmux.proto import binlogdata
from vsmux.wire import Frame
from vsmux.wire.frames import type_indexes, type_mask
from vsmux.wire.kinds import TRANSACTION_ENDS
from vsmux.wire.tables import table_of

__all__ = ["FeedEntry", "FeedRing"]

_T = binlogdata.VEventType
GTID = int(_T.GTID)
FIELD = int(_T.FIELD)
ROW = int(_T.ROW)
HEARTBEAT = int(_T.HEARTBEAT)
_ENDS = frozenset(int(t) for t in TRANSACTION_ENDS) | {int(_T.COPY_COMPLETED)}
_MASK = type_mask(_ENDS | {GTID, FIELD, HEARTBEAT})
_ROW_MASK = type_mask((ROW,))

_NO_FIELDS: Mapping[bytes, Frame] = {}


@dataclass(slots=True, eq=False)
class FeedEntry:
    """One whole unit of the feed's stream."""

    seq: int
    frames: list[Frame]
    # The shard position after this unit; None if it has no GTID (a ROLLBACK).
    position: str | None
    size: int
    # Trio time the unit was complete in the feed (how long it has waited).
    arrived: float
    # The FIELD event in force for each table (encoded name) before this unit.
    # Never mutated: a FIELD makes the ring start a new mapping.
    fields_before: Mapping[bytes, Frame]
    # Tables this unit sends a FIELD for.
    field_tables: frozenset[bytes]
    _row_tables: frozenset[bytes] | None = field(default=None, repr=False)

    def row_tables(self) -> frozenset[bytes]:
        """Tables with a ROW in this unit (read from the bytes once, on first ask)."""
        tables = self._row_tables
        if tables is None:
            frames = self.frames
            tables = self._row_tables = frozenset(
                table_of(frames[i]) for i in type_indexes(frames, _ROW_MASK)
            )
        return tables


class FeedRing:
    """The recent whole units of one tablet stream, by sequence number and position.

    ``start_position`` is the position the feed's stream starts after (the
    position of its first request; ``"current"`` is not a position and
    makes the ring's position unknown until the first unit with a GTID).
    Entries are numbered from 0; :attr:`tail` is the oldest kept and
    :attr:`head` the number the next one will get.
    """

    def __init__(self, start_position: str, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: list[FeedEntry] = []
        self._dropped = 0  # entries at the front of _entries already evicted
        self.tail = 0
        self.head = 0
        self.bytes = 0
        known = start_position not in ("", "current")
        #: The position after the newest unit (None until one is known).
        self.position: str | None = start_position if known else None
        # Position -> the seq of the unit that follows it.
        self._joins: dict[str, int] = {start_position: 0} if known else {}
        # The same pairs in the order they were added (by seq), for eviction.
        self._join_order: deque[tuple[str, int]] = deque(self._joins.items())
        self.fields: Mapping[bytes, Frame] = _NO_FIELDS
        self._pending: list[Frame] = []
        #: HEARTBEATs seen, and the latest one.
        self.heartbeats = 0
        self.last_heartbeat: Frame | None = None
        #: The GTID frame of the newest positioned unit.
        self.last_gtid: Frame | None = None
        #: Seconds between the newest positioned unit's commit and the tablet
        #: sending it (the tablet's own view of how far behind the stream is).
        self.lag = 0.0
        #: True while the tablet's last batch held only heartbeats: caught up.
        self.idle = False

    # -- reading ------------------------------------------------------------

    def __len__(self) -> int:
        return self.head - self.tail

    def entry(self, seq: int) -> FeedEntry:
        """The kept entry ``seq`` (``tail <= seq < head``)."""
        if not self.tail <= seq < self.head:
            raise IndexError(f"entry {seq} is not kept (kept: {self.tail}..{self.head - 1})")
        return self._entries[self._dropped + seq - self.tail]

    def entries(self, start: int, max_bytes: int) -> list[FeedEntry]:
        """Kept entries from ``start`` on, at least one, until ``max_bytes`` is passed."""
        out: list[FeedEntry] = []
        total = 0
        first = self._dropped + start - self.tail
        for entry in self._entries[first : first + 1024]:
            out.append(entry)
            total += entry.size
            if total >= max_bytes:
                break
        return out

    def join_point(self, position: str) -> int | None:
        """The seq a consumer at ``position`` reads next, if its next unit is kept."""
        seq = self._joins.get(position)
        if seq is None or seq < self.tail:
            return None
        return seq

    def fields_at(self, seq: int) -> Mapping[bytes, Frame]:
        """The FIELDs in force before entry ``seq`` (``head``: after the newest)."""
        return self.fields if seq >= self.head else self.entry(seq).fields_before

    def arrived_at(self, seq: int, now: float) -> float:
        """When entry ``seq`` arrived (``now`` for the next one)."""
        return now if seq >= self.head else self.entry(seq).arrived

    # -- writing ------------------------------------------------------------

    def add(self, batch: list[Frame], now: float) -> int:
        """Take one tablet response; return how many whole units it completed.

        Events after the batch's last terminator wait for the next batch.
        """
        added = 0
        pending = self._pending
        start = 0
        beats = 0
        for i in type_indexes(batch, _MASK):
            kind = batch[i].type
            if kind == HEARTBEAT:
                pending += batch[start:i]
                start = i + 1
                beats += 1
                self.last_heartbeat = batch[i]
            elif kind in _ENDS:
                pending += batch[start : i + 1]
                start = i + 1
                self._append(pending, now)
                pending = self._pending = []
                added += 1
        if start < len(batch):
            pending += batch[start:] if start else batch
        self.heartbeats += beats
        self.idle = beats > 0 and beats == len(batch)
        return added

    def _append(self, frames: list[Frame], now: float) -> None:
        position: str | None = None
        gtid_frame: Frame | None = None
        described: dict[bytes, Frame] = {}
        for i in type_indexes(frames, type_mask((GTID, FIELD))):
            frame = frames[i]
            if frame.type == GTID:
                gtid_frame = frame
            else:
                described[table_of(frame)] = frame
        before = self.fields
        if described:
            self.fields = {**before, **described}
        seq = self.head
        if gtid_frame is not None:
            header = gtid_frame.header()
            position = header.gtid
            self.last_gtid = gtid_frame
            if header.current_time and header.timestamp:
                self.lag = max(header.current_time / 1e9 - header.timestamp, 0.0)
            if position not in self._joins:
                self._joins[position] = seq + 1
                self._join_order.append((position, seq + 1))
            self.position = position
        size = sum(len(f.raw) for f in frames)
        self._entries.append(
            FeedEntry(seq, frames, position, size, now, before, frozenset(described))
        )
        self.head = seq + 1
        self.bytes += size

    def evict(
        self, keep_from: int, *, max_units: int | None = None, arrived_before: float | None = None
    ) -> bool:
        """Drop the oldest entries below ``keep_from`` that the ring need not keep.

        ``keep_from`` is the oldest entry some attached consumer still has
        to read. Entries go while the ring is over its byte bound, holds
        more than ``max_units``, or its oldest arrived before
        ``arrived_before``: no consumer could join that far back, so an idle
        or slow feed holds no more than joining needs. Returns True if the
        ring is still over its byte bound: the feed must wait for that
        consumer (or detach it) before reading on.
        """
        entries = self._entries
        limit = min(keep_from, self.head)
        while self.tail < limit:
            entry = entries[self._dropped]
            if not (
                self.bytes > self.max_bytes
                or (max_units is not None and self.head - self.tail > max_units)
                or (arrived_before is not None and entry.arrived < arrived_before)
            ):
                break
            entries[self._dropped] = _EVICTED
            self._dropped += 1
            self.bytes -= entry.size
            self.tail += 1
            self._forget(entry)
        if self._dropped > 64 and self._dropped * 2 > len(entries):
            del entries[: self._dropped]
            self._dropped = 0
        return self.bytes > self.max_bytes and self.tail < self.head

    def _forget(self, entry: FeedEntry) -> None:
        """Drop the join points that lead to an evicted entry."""
        order = self._join_order
        while order and order[0][1] <= entry.seq:
            position, _seq = order.popleft()
            del self._joins[position]


_EVICTED = FeedEntry(-1, [], None, 0, 0.0, _NO_FIELDS, frozenset())
