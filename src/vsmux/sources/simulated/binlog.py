"""One simulated MySQL server: table state plus a binlog of committed entries.

A :class:`ShardLog` belongs to one shard; every tablet of the shard (primary,
replicas) streams from it, like replicas sharing the primary's GTIDs. Each
commit applies its changes to the tables, gets the next GTID and is encoded
once into a :class:`LogEntry`; streams reuse those bytes. Commits are plain
synchronous calls; waiting streams are woken through a ``trio.Event`` that is
replaced on every commit.

The binlog keeps at most ``retention_bytes`` of encoded entries; a position
older than that is answered like a purged MySQL binlog (errno 1236).
"""

from __future__ import annotations

import enum
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import trio

from vsmux.proto import binlogdata
from vsmux.sources.simulated.gtid import GtidSet
from vsmux.sources.simulated.rows import (
    RowImage,
    encode_event,
    encode_field_event,
    encode_row_event,
    simple_event,
)
from vsmux.sources.simulated.schema import TableSchema, demo_schema

__all__ = ["DEFAULT_RETENTION_BYTES", "EntryKind", "LogEntry", "ShardLog", "TablePart"]

# Encoded bytes of binlog kept per shard: enough for hours of demo traffic and
# every test, small enough that a long-running `vsmux cluster` stays bounded.
DEFAULT_RETENTION_BYTES = 64 * 1024 * 1024

# A vttablet emits one ROW event per MySQL rows-event (binlog-row-event-max-size
# defaults to 8 KiB), so a large transaction is many modest ROW events.
ROW_EVENT_TARGET_BYTES = 8 * 1024

_T = binlogdata.VEventType

Change = tuple[str, RowImage | None, RowImage | None]  # table, before, after
Rows = dict[tuple[bytes, ...], RowImage]


class EntryKind(enum.Enum):
    TRANSACTION = "transaction"
    DDL = "ddl"
    OTHER = "other"
    JOURNAL = "journal"


@dataclass(slots=True)
class TablePart:
    """The ROW events of one table inside one transaction."""

    table: str
    version: int
    row_events: list[bytes]
    size: int


@dataclass(slots=True)
class LogEntry:
    """One committed GTID: its encoded events, shared by every stream."""

    seqno: int
    position: str
    timestamp: int
    kind: EntryKind
    parts: list[TablePart] = field(default_factory=list)
    statement: bytes = b""  # the DDL/OTHER event
    journal: bytes = b""  # the JOURNAL event
    size: int = 0
    begin: bytes = b""  # BEGIN, GTID and COMMIT events, encoded once
    gtid: bytes = b""
    commit: bytes = b""


_PURGED = LogEntry(0, "", 0, EntryKind.OTHER)  # placeholder for a purged slot


class ShardLog:
    """Tables, schemas and binlog of one shard's simulated MySQL server."""

    def __init__(
        self,
        keyspace: str,
        shard: str,
        server_uuid: str,
        *,
        retention_bytes: int = DEFAULT_RETENTION_BYTES,
    ) -> None:
        self.keyspace = keyspace
        self.shard = shard
        self.uuid = server_uuid
        self.schemas: dict[str, TableSchema] = demo_schema()
        self.tables: dict[str, Rows] = {name: {} for name in self.schemas}
        self.last_seqno = 0
        self.first_streamable = 1  # oldest seqno still in the binlog
        self.frozen = False  # set by a journal: this shard no longer takes writes
        # Kept entries are _entries[_head:]; purged ones are dropped from the
        # front in bulk, so reading the tail is a slice of new entries only.
        self._entries: list[LogEntry] = []
        self._head = 0
        self._bytes = 0
        self._retention = retention_bytes
        self._history: dict[tuple[str, int], TableSchema] = {
            (s.name, s.version): s for s in self.schemas.values()
        }
        self._field_payloads: dict[tuple[str, int], bytes] = {}
        self._changed = trio.Event()

    @staticmethod
    def new_uuid(seed_text: str) -> str:
        """A stable server uuid derived from ``seed_text``."""
        return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"vsmux-sim:{seed_text}"))

    # -- positions ---------------------------------------------------------

    def position(self, seqno: int | None = None) -> str:
        """``MySQL56/<uuid>:1-N`` for ``seqno`` (default: the current one)."""
        return str(GtidSet.single(self.uuid, self.last_seqno if seqno is None else seqno))

    def entries_after(self, seqno: int) -> Iterator[LogEntry]:
        """Committed entries with a greater seqno, oldest first (a snapshot)."""
        if seqno >= self.last_seqno or self._head >= len(self._entries):
            return iter(())
        first = self._entries[self._head].seqno
        return iter(self._entries[self._head + max(0, seqno + 1 - first) :])

    async def wait_beyond(self, seqno: int) -> None:
        """Return once an entry after ``seqno`` exists (at once if it already does)."""
        while self.last_seqno <= seqno:
            await self._changed.wait()

    def changed_event(self) -> trio.Event:
        """The event set by the next commit."""
        return self._changed

    # -- schema ------------------------------------------------------------

    def schema_version(self, table: str, version: int) -> TableSchema:
        return self._history[(table, version)]

    def field_event(self, table: str, version: int, timestamp: int) -> bytes:
        """An encoded FIELD event for one schema version of ``table``."""
        key = (table, version)
        payload = self._field_payloads.get(key)
        if payload is None:
            schema = self._history[key]
            payload = bytes(
                binlogdata.FieldEvent(
                    table_name=table,
                    fields=schema.fields(self.keyspace),
                    keyspace=self.keyspace,
                    shard=self.shard,
                )
            )
            self._field_payloads[key] = payload
        return encode_field_event(timestamp, self.keyspace, self.shard, payload)

    # -- commits -----------------------------------------------------------

    def bootstrap(self, tables: dict[str, Rows], schemas: dict[str, TableSchema]) -> None:
        """Start as a copy of other servers' rows: one unstreamable first GTID."""
        self.schemas = dict(schemas)
        for schema in schemas.values():
            self._history[(schema.name, schema.version)] = schema
        self.tables = {name: dict(rows) for name, rows in tables.items()}
        self.last_seqno = 1
        self.first_streamable = 2

    def commit(self, changes: Iterable[Change], timestamp: int) -> LogEntry:
        """Apply row changes as one transaction and log it."""
        self._check_writable()
        by_table: dict[str, list[tuple[RowImage | None, RowImage | None]]] = {}
        for table, before, after in changes:
            rows = self.tables[table]
            schema = self.schemas[table]
            if after is None:
                if before is not None:
                    rows.pop(schema.pk_of(before), None)
            else:
                rows[schema.pk_of(after)] = after
            by_table.setdefault(table, []).append((before, after))
        entry = self._new_entry(EntryKind.TRANSACTION, timestamp)
        for table, table_changes in by_table.items():
            entry.parts.append(self._encode_part(table, table_changes, timestamp))
        return self._append(entry)

    def commit_ddl(self, schema: TableSchema, statement: str, timestamp: int) -> LogEntry:
        """Replace a table's schema (a new version) and log the DDL."""
        self._check_writable()
        self.schemas[schema.name] = schema
        self._history[(schema.name, schema.version)] = schema
        entry = self._new_entry(EntryKind.DDL, timestamp)
        entry.statement = simple_event(
            binlogdata.VEventType.DDL, timestamp, self.keyspace, self.shard, statement=statement
        )
        return self._append(entry)

    def commit_other(self, timestamp: int) -> LogEntry:
        """Log a statement a vttablet reports as OTHER (e.g. a grant)."""
        self._check_writable()
        entry = self._new_entry(EntryKind.OTHER, timestamp)
        entry.statement = simple_event(
            binlogdata.VEventType.OTHER, timestamp, self.keyspace, self.shard
        )
        return self._append(entry)

    def commit_journal(self, journal: binlogdata.Journal, timestamp: int) -> LogEntry:
        """Log the resharding journal; the shard takes no writes afterwards."""
        self._check_writable()
        entry = self._new_entry(EntryKind.JOURNAL, timestamp)
        journal.local_position = entry.position
        entry.journal = encode_event(
            binlogdata.VEvent(
                type=binlogdata.VEventType.JOURNAL,
                timestamp=timestamp,
                journal=journal,
                keyspace=self.keyspace,
                shard=self.shard,
            )
        )
        self.frozen = True
        return self._append(entry)

    def _check_writable(self) -> None:
        if self.frozen:
            raise RuntimeError(
                f"{self.keyspace}/{self.shard} was resharded away and takes no more writes"
            )

    def _new_entry(self, kind: EntryKind, timestamp: int) -> LogEntry:
        seqno = self.last_seqno + 1
        position = self.position(seqno)
        ks, shard = self.keyspace, self.shard
        return LogEntry(
            seqno,
            position,
            timestamp,
            kind,
            begin=simple_event(_T.BEGIN, timestamp, ks, shard),
            gtid=simple_event(_T.GTID, timestamp, ks, shard, gtid=position),
            commit=simple_event(_T.COMMIT, timestamp, ks, shard),
        )

    def _encode_part(
        self,
        table: str,
        changes: list[tuple[RowImage | None, RowImage | None]],
        timestamp: int,
    ) -> TablePart:
        events: list[bytes] = []
        pending: list[tuple[RowImage | None, RowImage | None]] = []
        pending_size = 0
        for before, after in changes:
            pending.append((before, after))
            pending_size += sum(len(v or b"") + 2 for v in (before or ()) + (after or ()))
            if pending_size >= ROW_EVENT_TARGET_BYTES:
                events.append(
                    encode_row_event(timestamp, self.keyspace, self.shard, table, pending)
                )
                pending, pending_size = [], 0
        if pending:
            events.append(encode_row_event(timestamp, self.keyspace, self.shard, table, pending))
        version = self.schemas[table].version
        return TablePart(table, version, events, sum(len(e) for e in events))

    def _append(self, entry: LogEntry) -> LogEntry:
        entry.size = (
            sum(p.size for p in entry.parts) + len(entry.statement) + len(entry.journal) + 64
        )
        self.last_seqno = entry.seqno
        self._entries.append(entry)
        self._bytes += entry.size
        while self._bytes > self._retention and len(self._entries) - self._head > 1:
            dropped = self._entries[self._head]
            self._entries[self._head] = _PURGED
            self._head += 1
            self._bytes -= dropped.size
            self.first_streamable = dropped.seqno + 1
        if self._head > 1024 and self._head * 2 > len(self._entries):
            del self._entries[: self._head]
            self._head = 0
        changed, self._changed = self._changed, trio.Event()
        changed.set()
        return entry
