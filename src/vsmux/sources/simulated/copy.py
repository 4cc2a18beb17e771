"""The copy phase: a consistent snapshot of the selected tables, in blocks.

A copy starts by taking a snapshot of the tables at a binlog position (a
synchronous step, so no commit can slip in between), then sends:

1. ``BEGIN, LASTPK(table, lastpk)... , GTID(snapshot), COMMIT`` — every table
   still to copy with where it resumes (unset = from the start), and the
   snapshot position, so a client's saved VGtid names both;
2. per table, blocks of ``BEGIN, [FIELD], ROW..., LASTPK(last key), COMMIT``
   and finally ``BEGIN, LASTPK(completed), COMMIT``;
3. ``COPY_COMPLETED``.

Streaming then continues from the snapshot position. Resuming with a
position and ``table_last_p_ks`` first replays the binlog from that position
keeping only changes to rows already copied (tables no longer listed are
complete; listed ones up to their last key), then copies the rest from a new
snapshot. That keeps the result exact: no lost and no repeated change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, query
from vsmux.sources.simulated.binlog import ROW_EVENT_TARGET_BYTES, ShardLog
from vsmux.sources.simulated.filters import TableFilter
from vsmux.sources.simulated.rows import (
    RowImage,
    decode_row,
    encode_event,
    encode_row,
    encode_row_event,
    simple_event,
)
from vsmux.sources.simulated.schema import TableSchema

__all__ = ["COPY_BLOCK_ROWS", "CopyPlan", "RowBound", "plan_copy", "restrict_row_event"]

# Rows per copy block (one BEGIN..COMMIT with a LASTPK). Small enough that a
# block stays well under a response, large enough to keep overhead low.
COPY_BLOCK_ROWS = 1000

Event = tuple[int, bytes]
SortKey = tuple[int | bytes, ...]
# Per table: the last copied key's sort key; None = nothing copied yet.
RowBound = dict[str, SortKey | None]

_T = binlogdata.VEventType


@dataclass(slots=True)
class _TableSnapshot:
    schema: TableSchema
    rows: list[RowImage]
    start: tuple[bytes, ...] | None  # the lastpk this table resumes after


@dataclass(slots=True)
class CopyPlan:
    """A snapshot taken at ``seqno``; :meth:`events` yields the copy's events."""

    log: ShardLog
    seqno: int
    tables: list[_TableSnapshot]

    def events(self, seen: dict[str, int], timestamp: int) -> Iterator[Event]:
        log, ks, shard = self.log, self.log.keyspace, self.log.shard
        yield int(_T.BEGIN), simple_event(_T.BEGIN, timestamp, ks, shard)
        for table in self.tables:
            yield int(_T.LASTPK), _lastpk_event(log, table.schema, table.start, False, timestamp)
        gtid = log.position(self.seqno)
        yield int(_T.GTID), simple_event(_T.GTID, timestamp, ks, shard, gtid=gtid)
        yield int(_T.COMMIT), simple_event(_T.COMMIT, timestamp, ks, shard)
        for table in self.tables:
            schema = table.schema
            for first in range(0, len(table.rows), COPY_BLOCK_ROWS):
                block = table.rows[first : first + COPY_BLOCK_ROWS]
                yield int(_T.BEGIN), simple_event(_T.BEGIN, timestamp, ks, shard)
                if seen.get(schema.name) != schema.version:
                    seen[schema.name] = schema.version
                    field = log.field_event(schema, timestamp)
                    yield int(_T.FIELD), field
                for chunk in _chunks(block):
                    raw = encode_row_event(
                        timestamp, ks, shard, schema.name, ((None, r) for r in chunk)
                    )
                    yield int(_T.ROW), raw
                last = schema.pk_of(block[-1])
                yield int(_T.LASTPK), _lastpk_event(log, schema, last, False, timestamp)
                yield int(_T.COMMIT), simple_event(_T.COMMIT, timestamp, ks, shard)
            yield int(_T.BEGIN), simple_event(_T.BEGIN, timestamp, ks, shard)
            yield int(_T.LASTPK), _lastpk_event(log, schema, None, True, timestamp)
            yield int(_T.COMMIT), simple_event(_T.COMMIT, timestamp, ks, shard)
        yield int(_T.COPY_COMPLETED), simple_event(_T.COPY_COMPLETED, timestamp, ks, shard)


def plan_copy(
    log: ShardLog,
    table_filter: TableFilter,
    last_pks: dict[str, binlogdata.TableLastPk],
    tables_to_copy: list[str],
    *,
    resuming: bool,
) -> tuple[CopyPlan, RowBound]:
    """Snapshot the tables to copy now; also the bounds a catch-up must respect.

    ``resuming`` (a position was given): only the tables listed in
    ``last_pks`` are still to copy.
    """
    names = sorted(
        t
        for t in log.schemas
        if table_filter.matches(t) and (not tables_to_copy or t in tables_to_copy)
    )
    if resuming:
        names = [t for t in names if t in last_pks]
    snapshots: list[_TableSnapshot] = []
    bounds: RowBound = {}
    for name in names:
        schema = log.schemas[name]
        start = _decode_lastpk(schema, last_pks[name]) if name in last_pks else None
        bound = schema.sort_key(start) if start is not None else None
        bounds[name] = bound
        rows = log.tables[name]
        keys = [k for k in rows if bound is None or schema.sort_key(k) > bound]
        keys.sort(key=schema.sort_key)
        snapshots.append(_TableSnapshot(schema, [rows[k] for k in keys], start))
    return CopyPlan(log, log.last_seqno, snapshots), bounds


def restrict_row_event(raw: bytes, schema: TableSchema, bound: SortKey | None) -> bytes | None:
    """``raw`` keeping only changes to rows at or below ``bound`` (None: none)."""
    if bound is None:
        return None
    event = binlogdata.VEvent.parse(raw)
    row_event = event.row_event
    if row_event is None:
        return raw
    kept: list[tuple[RowImage | None, RowImage | None]] = []
    for change in row_event.row_changes:
        before = decode_row(change.before) if change.before is not None else None
        after = decode_row(change.after) if change.after is not None else None
        image = after if after is not None else before
        if image is not None and schema.sort_key(schema.pk_of(image)) <= bound:
            kept.append((before, after))
    if not kept:
        return None
    return encode_row_event(event.timestamp, event.keyspace, event.shard, schema.name, kept)


def _chunks(rows: list[RowImage]) -> Iterator[list[RowImage]]:
    chunk: list[RowImage] = []
    size = 0
    for row in rows:
        chunk.append(row)
        size += sum(len(v or b"") + 2 for v in row)
        if size >= ROW_EVENT_TARGET_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _lastpk_event(
    log: ShardLog,
    schema: TableSchema,
    pk: tuple[bytes, ...] | None,
    completed: bool,
    timestamp: int,
) -> bytes:
    result = None
    if pk is not None:
        result = query.QueryResult(
            fields=schema.pk_fields(log.keyspace),
            rows=[query.Row.parse(encode_row(pk))],
        )
    return encode_event(
        binlogdata.VEvent(
            type=_T.LASTPK,
            timestamp=timestamp,
            last_p_k_event=binlogdata.LastPkEvent(
                table_last_p_k=binlogdata.TableLastPk(table_name=schema.name, lastpk=result),
                completed=completed,
            ),
            keyspace=log.keyspace,
            shard=log.shard,
        )
    )


def _decode_lastpk(schema: TableSchema, last: binlogdata.TableLastPk) -> tuple[bytes, ...] | None:
    if last.lastpk is None or not last.lastpk.rows:
        return None
    values = decode_row(last.lastpk.rows[0])
    if len(values) != len(schema.pk) or any(v is None for v in values):
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"lastpk for table {schema.name!r} has {len(values)} values; "
            f"its primary key has {len(schema.pk)} columns",
        )
    return tuple(v or b"" for v in values)
