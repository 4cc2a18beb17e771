"""One simulated MySQL server: table state plus a binlog of committed entries.

A :class:`ShardLog` belongs to one shard; every tablet of the shard (primary,
replicas) streams from it, like replicas sharing the primary's GTIDs. Each
commit applies its changes to the tables, gets the next GTID and is encoded
once into a :class:`LogEntry`; streams reuse those bytes. Commits are plain
synchronous calls; waiting streams are woken through a ``trio.Event`` that is
replaced on every commit.

Like a MySQL server's binlog it is bounded: entries older than
``retention_seconds`` (``binlog_expire_logs_seconds``) or beyond
``retention_bytes`` (what the kept entries take in memory, Python objects
included) are purged from the front, oldest first, on each commit. The
newest entry is always kept. A position older than the oldest kept entry is
answered as a vttablet answers a purged binlog (errno 1236, see
:mod:`.stream`). Nothing else grows per transaction: schema versions no kept
entry refers to, and their cached FIELD payloads, go with the entries.
"""

from __future__ import annotations

import enum
import sys
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import trio

from vsmux.proto import binlogdata
from vsmux.sources._simulated.gtid import GtidSet
from vsmux.sources._simulated.rows import (
    RowImage,
    encode_event,
    encode_field_event,
    encode_row_event,
    simple_event,
)
from vsmux.sources._simulated.schema import TableSchema, demo_schema

__all__ = [
    "DEFAULT_RETENTION_BYTES",
    "DEFAULT_RETENTION_SECONDS",
    "EntryKind",
    "LogEntry",
    "ShardLog",
    "TablePart",
]

# Memory the binlog of one shard may take (entries as Python objects, not just
# their encoded bytes, so the bound is what RSS sees). The demo's 50 writes/s
# over 4 shards take about 15 KB/s per shard: the age bound below is reached
# long before this one, which caps a fast `vsmux cluster` (1000 writes/s).
DEFAULT_RETENTION_BYTES = 64 * 1024 * 1024
# How long a committed entry stays streamable (MySQL's
# binlog_expire_logs_seconds, whose default of 30 days a process holding its
# binlog in memory cannot afford). Five minutes lets a client that lost its
# connection resume from its position well after any reconnect backoff, and
# makes a long-running demo's binlog reach a steady size within minutes.
DEFAULT_RETENTION_SECONDS = 300.0

# A vttablet emits one ROW event per MySQL rows-event (binlog-row-event-max-size
# defaults to 8 KiB), so a large transaction is many modest ROW events.
ROW_EVENT_TARGET_BYTES = 8 * 1024

_T = binlogdata.VEventType

Change = tuple[str, RowImage | None, RowImage | None]  # table, before, after
Rows = dict[tuple[bytes, ...], RowImage]


class EntryKind(enum.Enum):
    """What one committed :class:`LogEntry` holds, which decides the events a stream sends for it.

    TRANSACTION: row changes (BEGIN, a FIELD where the stream needs one, ROWs,
    GTID, COMMIT); DDL and OTHER: a GTID and that one statement event;
    JOURNAL: the resharding journal in a transaction of its own (BEGIN,
    JOURNAL, GTID, COMMIT), after which the shard takes no writes.
    """

    TRANSACTION = "transaction"
    DDL = "ddl"
    OTHER = "other"
    JOURNAL = "journal"


@dataclass(slots=True)
class TablePart:
    """The ROW events of one table inside one transaction.

    ``schema`` is the table's schema when the transaction committed: a stream
    sends its FIELD event from it, so a part stays streamable whatever the
    log has forgotten since.
    """

    schema: TableSchema
    row_events: list[bytes]
    size: int

    @property
    def table(self) -> str:
        return self.schema.name

    @property
    def version(self) -> int:
        return self.schema.version


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

# What an entry costs beyond its bytes objects: the LogEntry, its parts list
# and its slot in the log's list (TablePart and row-event lists are added per
# part). Measured once, so the estimate follows the running interpreter.
_ENTRY_OVERHEAD = sys.getsizeof(_PURGED) + sys.getsizeof([]) + 8
_PART_OVERHEAD = sys.getsizeof(TablePart(demo_schema()["customer"], [], 0)) + sys.getsizeof([])


def _footprint(entry: LogEntry) -> int:
    """Bytes ``entry`` holds in memory (shared empty bytes not counted)."""
    size = _ENTRY_OVERHEAD + sys.getsizeof(entry.position)
    for raw in (entry.begin, entry.gtid, entry.commit, entry.statement, entry.journal):
        if raw:
            size += sys.getsizeof(raw)
    for part in entry.parts:
        size += _PART_OVERHEAD + sum(map(sys.getsizeof, part.row_events))
    return size


class ShardLog:
    """Tables, schemas and binlog of one shard's simulated MySQL server."""

    def __init__(
        self,
        keyspace: str,
        shard: str,
        server_uuid: str,
        *,
        retention_bytes: int = DEFAULT_RETENTION_BYTES,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
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
        self._retention_bytes = retention_bytes
        self._retention_seconds = retention_seconds
        # Per table, its schema versions still in use, oldest first, each with
        # the seqno of the DDL that made it (0: from the start). Versions are
        # dropped once no kept entry can refer to them (see _forget_schemas).
        self._versions: dict[str, list[tuple[int, TableSchema]]] = {
            name: [(0, schema)] for name, schema in self.schemas.items()
        }
        self._field_payloads: dict[tuple[str, int], bytes] = {}
        self._changed = trio.Event()

    @property
    def retained_bytes(self) -> int:
        """Memory the kept entries take (as counted against ``retention_bytes``)."""
        return self._bytes

    @property
    def retained_entries(self) -> int:
        return len(self._entries) - self._head

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
        """A version of ``table``'s schema that a kept entry may use (KeyError if gone)."""
        for _, schema in self._versions[table]:
            if schema.version == version:
                return schema
        raise KeyError((table, version))

    def field_event(self, schema: TableSchema, timestamp: int) -> bytes:
        """An encoded FIELD event for ``schema`` (one version of one table).

        Payloads are cached while the version is in use by the log; one the
        log has forgotten (a long copy's, say) is encoded afresh each time.
        """
        key = (schema.name, schema.version)
        payload = self._field_payloads.get(key)
        if payload is None:
            payload = bytes(
                binlogdata.FieldEvent(
                    table_name=schema.name,
                    fields=schema.fields(self.keyspace),
                    keyspace=self.keyspace,
                    shard=self.shard,
                )
            )
            if any(v.version == schema.version for _, v in self._versions.get(schema.name, ())):
                self._field_payloads[key] = payload
        return encode_field_event(timestamp, self.keyspace, self.shard, payload)

    # -- commits -----------------------------------------------------------

    def bootstrap(self, tables: dict[str, Rows], schemas: dict[str, TableSchema]) -> None:
        """Start as a copy of other servers' rows: one unstreamable first GTID."""
        self.schemas = dict(schemas)
        self._versions = {name: [(0, schema)] for name, schema in schemas.items()}
        self._field_payloads.clear()
        self.tables = {name: dict(rows) for name, rows in tables.items()}
        self.last_seqno = 1
        self.first_streamable = 2

    def encode(self, changes: Iterable[Change], timestamp: int) -> list[TablePart]:
        """The ROW events of a transaction of ``changes``, per table; changes nothing.

        Encoding is most of a big commit's cost: a caller may do it ahead of
        :meth:`commit`, outside the step that must not be interrupted.
        """
        by_table: dict[str, list[tuple[RowImage | None, RowImage | None]]] = {}
        for table, before, after in changes:
            by_table.setdefault(table, []).append((before, after))
        return [self._encode_part(table, rows, timestamp) for table, rows in by_table.items()]

    def commit(
        self, changes: Sequence[Change], timestamp: int, parts: list[TablePart] | None = None
    ) -> LogEntry:
        """Apply row changes as one transaction and log it.

        ``parts`` are the changes as :meth:`encode` gave them; they are used
        if every table's schema is still the one they were encoded with (a
        DDL in between: encoded again).
        """
        self._check_writable()
        if parts is None or any(p.schema is not self.schemas[p.table] for p in parts):
            parts = self.encode(changes, timestamp)
        for table, before, after in changes:
            rows = self.tables[table]
            schema = self.schemas[table]
            if after is None:
                if before is not None:
                    rows.pop(schema.pk_of(before), None)
            else:
                rows[schema.pk_of(after)] = after
        entry = self._new_entry(EntryKind.TRANSACTION, timestamp)
        entry.parts = parts
        return self._append(entry)

    def commit_ddl(self, schema: TableSchema, statement: str, timestamp: int) -> LogEntry:
        """Replace a table's schema (a new version) and log the DDL."""
        self._check_writable()
        self.schemas[schema.name] = schema
        entry = self._new_entry(EntryKind.DDL, timestamp)
        self._versions.setdefault(schema.name, []).append((entry.seqno, schema))
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
        return TablePart(self.schemas[table], events, sum(len(e) for e in events))

    def _append(self, entry: LogEntry) -> LogEntry:
        entry.size = _footprint(entry)
        self.last_seqno = entry.seqno
        self._entries.append(entry)
        self._bytes += entry.size
        self._purge(entry.timestamp - self._retention_seconds)
        changed, self._changed = self._changed, trio.Event()
        changed.set()
        return entry

    def _purge(self, expired_before: float) -> None:
        """Drop the oldest entries while over the byte bound or older than the age bound.

        The newest entry always stays, so the log's position is always a
        position it can stream from.
        """
        purged = False
        entries = self._entries
        while len(entries) - self._head > 1:
            oldest = entries[self._head]
            if self._bytes <= self._retention_bytes and oldest.timestamp >= expired_before:
                break
            entries[self._head] = _PURGED
            self._head += 1
            self._bytes -= oldest.size
            self.first_streamable = oldest.seqno + 1
            purged = True
        # Purged slots are cut off in bulk, so a purge costs O(1) per entry.
        if self._head > 1024 and self._head * 2 > len(entries):
            del entries[: self._head]
            self._head = 0
        if purged:
            self._forget_schemas()

    def _forget_schemas(self) -> None:
        """Drop schema versions that no kept entry can refer to.

        A version stays in use until the DDL that replaced it is itself at or
        before the oldest kept entry; every later entry uses a newer one.
        """
        oldest = self.first_streamable
        for versions in self._versions.values():
            while len(versions) > 1 and versions[1][0] <= oldest:
                _, old = versions.pop(0)
                self._field_payloads.pop((old.name, old.version), None)
