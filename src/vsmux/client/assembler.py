"""Grouping a VStream's events into units a client can act on atomically.

A gateway may split one transaction over several responses, and it reports
positions as VGTID events inside the transaction they belong to (the last
VGTID before COMMIT is the transaction's position). :class:`Assembler` takes
events in arrival order and returns a :class:`Unit` each time one is
complete: a transaction at its COMMIT, and standalone DDL, OTHER, ROLLBACK,
COPY_COMPLETED, JOURNAL and idle HEARTBEAT events. Rows are decoded as they
arrive (FIELD events in the same transaction may change the schema), kept
with the unit and released only at its end, so a client writes nothing of a
transaction it has not received completely.

Memory: an open transaction's decoded rows are held until its COMMIT; that
is the unit of at-least-once delivery, so it cannot be smaller.

Synchronous and I/O-free; there is nothing to cancel.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from vsmux.client.rows import RawChange, RowChangeRecord, SchemaCache
from vsmux.proto import binlogdata
from vsmux.wire.kinds import UNIT_ENDS

__all__ = ["Assembler", "RowChange", "Unit", "UnitKind", "copying_shards"]

E = binlogdata.VEventType


class UnitKind(enum.Enum):
    """What kind of :class:`Unit` the assembler completed, named after the event that ended it.

    TRANSACTION ends at COMMIT; ROLLBACK, DDL, OTHER, COPY_COMPLETED and
    JOURNAL at that event; HEARTBEAT is a gateway heartbeat outside any
    transaction. ``vsmux tail``'s progress counts only TRANSACTION units as
    transactions.
    """

    TRANSACTION = "transaction"
    ROLLBACK = "rollback"
    DDL = "ddl"
    OTHER = "other"
    COPY_COMPLETED = "copy_completed"
    JOURNAL = "journal"
    HEARTBEAT = "heartbeat"


# What kind of unit each of UNIT_ENDS closes.
_KIND_OF_END = {
    E.COMMIT: UnitKind.TRANSACTION,
    E.ROLLBACK: UnitKind.ROLLBACK,
    E.DDL: UnitKind.DDL,
    E.OTHER: UnitKind.OTHER,
    E.COPY_COMPLETED: UnitKind.COPY_COMPLETED,
    E.JOURNAL: UnitKind.JOURNAL,
}


@dataclass(frozen=True, slots=True)
class RowChange:
    """A decoded row change and where it happened.

    ``snapshot`` is true for rows the copy phase read from the table: inserts
    of a shard that is still copying (its stream started with an empty gtid
    or pending table_p_ks) in a unit that did not move the shard's GTID set.
    Changes streamed from the binlog while the copy runs (the catch-up between
    copy batches, which moves the GTID set) are live changes, not snapshot rows.
    ``raw`` keeps the undecoded images for formats that render values their
    own way.
    """

    keyspace: str
    shard: str
    table: str
    record: RowChangeRecord
    snapshot: bool = False
    raw: RawChange | None = None


@dataclass(slots=True)
class Unit:
    """A complete unit: its events, decoded rows and the position after it.

    ``position`` is the latest VGtid received up to and including this unit
    (``None`` until the server has sent one); ``timestamp`` is the
    terminating event's source commit time in seconds.
    """

    kind: UnitKind
    events: list[binlogdata.VEvent] = field(default_factory=list)
    rows: list[RowChange] = field(default_factory=list)
    position: binlogdata.VGtid | None = None
    timestamp: int = 0
    current_time: int = 0
    keyspace: str = ""
    shard: str = ""


def copying_shards(vgtid: binlogdata.VGtid | None) -> set[tuple[str, str]]:
    """Shards of a start position that will copy first (gtid "" or pending table_p_ks).

    A shard of ``""`` stands for every shard of its keyspace.
    """
    if vgtid is None:
        return set()
    return {(sg.keyspace, sg.shard) for sg in vgtid.shard_gtids if sg.gtid == "" or sg.table_p_ks}


class Assembler:
    """Turns VEvents into complete :class:`Unit` values.

    ``feed`` may raise :class:`vsmux.client.rows.RowDecodeError` (a ROW whose
    FIELD is unknown, or a corrupt image); the assembler is then in an
    undefined state and the stream should be restarted with :meth:`restart`.
    """

    def __init__(
        self,
        position: binlogdata.VGtid | None = None,
        schema: SchemaCache | None = None,
    ) -> None:
        self.schema = schema if schema is not None else SchemaCache()
        self.position = position
        self._copying = copying_shards(position)
        self._copied: set[tuple[str, str]] = set()
        self._events: list[binlogdata.VEvent] = []
        self._rows: list[RowChange] = []
        self._in_transaction = False
        # The position when the unit being assembled began.
        self._unit_start: binlogdata.VGtid | None = position

    def restart(self, position: binlogdata.VGtid | None) -> None:
        """Drop any unfinished unit and the schema: a new stream resends both."""
        self.schema.clear()
        self.position = position
        self._copying = copying_shards(position)
        self._copied = set()
        self._events = []
        self._rows = []
        self._in_transaction = False
        self._unit_start = position

    @property
    def pending(self) -> bool:
        """Whether events of an unfinished unit are held."""
        return bool(self._events)

    def feed(self, events: Iterable[binlogdata.VEvent]) -> list[Unit]:
        """Consume events in order; return the units they complete."""
        done: list[Unit] = []
        for event in events:
            unit = self._one(event)
            if unit is not None:
                done.append(unit)
        return done

    def _one(self, event: binlogdata.VEvent) -> Unit | None:
        kind = event.type
        if not self._events:
            self._unit_start = self.position
        self._events.append(event)
        if kind == E.BEGIN:
            self._in_transaction = True
        elif kind == E.VGTID and event.vgtid is not None:
            self.position = event.vgtid
        elif kind == E.FIELD and event.field_event is not None:
            self.schema.learn(event.field_event, event.keyspace, event.shard)
        elif kind == E.ROW and event.row_event is not None:
            ks, sh, table, records = self.schema.changes(
                event.row_event, event.keyspace, event.shard
            )
            raws = self.schema.raw_changes(event.row_event, ks, sh)
            copying = self._is_copying(ks, sh)
            self._rows.extend(
                RowChange(ks, sh, table, r, copying and r.op == "insert", raw)
                for r, raw in zip(records, raws, strict=True)
            )
        elif kind == E.HEARTBEAT and not self._in_transaction:
            return self._finish(UnitKind.HEARTBEAT, event)
        elif kind in UNIT_ENDS:
            # A DDL only marks the shard's columns stale: servers resend FIELD
            # just for the table it changed (see SchemaCache).
            if kind == E.DDL:
                self.schema.ddl_applied(event.keyspace, event.shard)
            elif kind == E.COPY_COMPLETED:
                self._copy_completed(event.keyspace, event.shard)
            return self._finish(_KIND_OF_END[kind], event)
        return None

    def _is_copying(self, keyspace: str, shard: str) -> bool:
        if (keyspace, shard) in self._copied:
            return False
        return (keyspace, shard) in self._copying or (keyspace, "") in self._copying

    def _copy_completed(self, keyspace: str, shard: str) -> None:
        # The gateway sends one per shard, then one with neither set once every
        # shard is done.
        if keyspace or shard:
            self._copied.add((keyspace, shard))
        else:
            self._copying.clear()

    def _gtid_moved(self, keyspace: str, shard: str) -> bool:
        """Whether the unit being finished moved the shard's GTID set (read the binlog)."""
        before = _shard_gtid(self._unit_start, keyspace, shard)
        after = _shard_gtid(self.position, keyspace, shard)
        return bool(before) and after is not None and after != before

    def _finish(self, kind: UnitKind, last: binlogdata.VEvent) -> Unit:
        rows = self._rows
        if any(r.snapshot for r in rows):
            moved = {(r.keyspace, r.shard) for r in rows if r.snapshot}
            moved = {ks_sh for ks_sh in moved if self._gtid_moved(*ks_sh)}
            if moved:
                rows = [
                    dataclasses.replace(r, snapshot=False) if (r.keyspace, r.shard) in moved else r
                    for r in rows
                ]
        unit = Unit(
            kind=kind,
            events=self._events,
            rows=rows,
            position=self.position,
            timestamp=last.timestamp,
            current_time=last.current_time,
            keyspace=last.keyspace,
            shard=last.shard,
        )
        self._events = []
        self._rows = []
        self._in_transaction = False
        return unit


def _shard_gtid(vgtid: binlogdata.VGtid | None, keyspace: str, shard: str) -> str | None:
    """The shard's GTID set in ``vgtid``, or None when it has no entry of its own."""
    if vgtid is None:
        return None
    for sg in vgtid.shard_gtids:
        if sg.keyspace == keyspace and sg.shard == shard:
            return sg.gtid
    return None
