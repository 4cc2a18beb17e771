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

The snapshot itself is a shallow copy of each table's dict (C speed: ~20 ms
for 500k rows); putting the rows in primary-key order is the expensive part.
:meth:`CopyPlan.events` does it in slices and yields :data:`PAUSE` between
them, where the async caller returns to the event loop: the keys are sorted
in runs of ``COPY_RUN_ROWS``, the runs merged lazily while the blocks are
encoded, and encoding pauses every ``COPY_SLICE_ROWS`` rows. Sorting half a
million keys in one go froze a gateway sharing the loop for seconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, query
from vsmux.sources._simulated.binlog import ROW_EVENT_TARGET_BYTES, ShardLog
from vsmux.sources._simulated.filters import TableFilter
from vsmux.sources._simulated.rows import (
    RowImage,
    decode_row,
    encode_event,
    encode_row,
    encode_row_event,
    simple_event,
)
from vsmux.sources._simulated.schema import TableSchema

__all__ = [
    "COPY_BLOCK_ROWS",
    "COPY_RUN_ROWS",
    "COPY_SLICE_ROWS",
    "PAUSE",
    "CopyPlan",
    "RowBound",
    "copy_bounds",
    "plan_copy",
    "restrict_row_event",
]

# Rows per copy block (one BEGIN..COMMIT with a LASTPK). Small enough that a
# block stays well under a response, large enough to keep overhead low.
COPY_BLOCK_ROWS = 1000
# Rows encoded per slice of copy work, after which the caller pauses: ~5 ms
# of CPython. A task sharing the loop waits up to one slice per hop; a gRPC
# health check answered by a gateway in the same loop takes several hops, and
# with 2048-row slices (~45 ms) it took 300 ms during a copy. A checkpoint
# costs ~20 us, so small slices are cheap.
COPY_SLICE_ROWS = 512
# Rows sorted into one run, after which the caller pauses: a C sort of 4096
# keys takes ~3 ms, and fewer, longer runs keep the merge cheap (log2 of the
# number of runs per row: a million rows are 245 runs, 8 comparisons).
COPY_RUN_ROWS = 4096

Event = tuple[int, bytes]
SortKey = tuple[int | bytes, ...]
Key = tuple[bytes, ...]
# Yielded by CopyPlan.events between slices of work: not an event, a point
# where the caller should let other tasks run (compare with ``is``).
PAUSE: Final[Event] = (-1, b"")
# Per table: the last copied key's sort key; None = nothing copied yet.
RowBound = dict[str, SortKey | None]

_T = binlogdata.VEventType


@dataclass(slots=True)
class _TableSnapshot:
    schema: TableSchema
    rows: dict[Key, RowImage]  # a private copy taken at the snapshot, in no order
    start: tuple[bytes, ...] | None  # the lastpk this table resumes after
    bound: SortKey | None  # sort key of ``start``: only rows above it are copied

    def ordered(self) -> Iterator[Event | Iterator[RowImage]]:
        """PAUSE after each slice of work, then the rows in key order (an iterator).

        Runs hold the snapshot's own key objects and sort keys are computed
        on the fly (again while merging): a copy of a big table then creates
        almost no objects, which would otherwise set off the collector's full
        passes over every row in the process.
        """
        rows, bound, schema = self.rows, self.bound, self.schema
        order = _order_key(schema)
        runs: list[list[Key]] = []
        run: list[Key] = []
        for examined, key in enumerate(rows, start=1):
            if bound is None or schema.sort_key(key) > bound:
                run.append(key)
            if examined % COPY_RUN_ROWS == 0:
                run.sort(key=order)
                runs.append(run)
                run = []
                yield PAUSE
        run.sort(key=order)
        runs.append(run)
        merged = runs[0] if len(runs) == 1 else heapq.merge(*runs, key=order)
        yield (rows[key] for key in merged)


@dataclass(slots=True)
class CopyPlan:
    """A snapshot taken at ``seqno``; :meth:`events` yields the copy's events.

    ``bounds``: per table to copy, the last key already copied (None: none),
    which a catch-up before the copy must respect.
    """

    log: ShardLog
    seqno: int
    tables: list[_TableSnapshot]
    bounds: RowBound

    def events(self, seen: dict[str, int], timestamp: int) -> Iterator[Event]:
        """The copy's events, with :data:`PAUSE` between slices of work.

        A table's rows are put in order when its turn comes (a pause per
        run of ``COPY_RUN_ROWS``); encoding pauses every ``COPY_SLICE_ROWS``.
        """
        log, ks, shard = self.log, self.log.keyspace, self.log.shard
        yield int(_T.BEGIN), simple_event(_T.BEGIN, timestamp, ks, shard)
        for table in self.tables:
            yield int(_T.LASTPK), _lastpk_event(log, table.schema, table.start, False, timestamp)
        gtid = log.position(self.seqno)
        yield int(_T.GTID), simple_event(_T.GTID, timestamp, ks, shard, gtid=gtid)
        yield int(_T.COMMIT), simple_event(_T.COMMIT, timestamp, ks, shard)
        for table in self.tables:
            schema = table.schema
            rows: Iterator[RowImage] = iter(())
            for step in table.ordered():
                if isinstance(step, tuple):
                    yield step
                else:
                    rows = step
            encoded = 0
            while block := list(islice(rows, COPY_BLOCK_ROWS)):
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
                    encoded += len(chunk)
                    if encoded >= COPY_SLICE_ROWS:
                        encoded = 0
                        yield PAUSE
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
) -> CopyPlan:
    """Snapshot the tables to copy now (shallow copies; ordering comes later, in slices).

    ``resuming`` (a position was given): only the tables listed in
    ``last_pks`` are still to copy.
    """
    snapshots: list[_TableSnapshot] = []
    bounds: RowBound = {}
    for name, schema, start, bound in _tables(
        log, table_filter, last_pks, tables_to_copy, resuming
    ):
        bounds[name] = bound
        snapshots.append(_TableSnapshot(schema, dict(log.tables[name]), start, bound))
    return CopyPlan(log, log.last_seqno, snapshots, bounds)


def copy_bounds(
    log: ShardLog,
    table_filter: TableFilter,
    last_pks: dict[str, binlogdata.TableLastPk],
    tables_to_copy: list[str],
) -> RowBound:
    """The bounds of a resumed copy's catch-up, without taking a snapshot."""
    return {
        name: bound
        for name, _, _, bound in _tables(log, table_filter, last_pks, tables_to_copy, True)
    }


def _tables(
    log: ShardLog,
    table_filter: TableFilter,
    last_pks: dict[str, binlogdata.TableLastPk],
    tables_to_copy: list[str],
    resuming: bool,
) -> Iterator[tuple[str, TableSchema, Key | None, SortKey | None]]:
    names = sorted(
        t
        for t in log.schemas
        if table_filter.matches(t) and (not tables_to_copy or t in tables_to_copy)
    )
    if resuming:
        names = [t for t in names if t in last_pks]
    for name in names:
        schema = log.schemas[name]
        start = _decode_lastpk(schema, last_pks[name]) if name in last_pks else None
        yield name, schema, start, schema.sort_key(start) if start is not None else None


def _order_key(schema: TableSchema) -> Callable[[Key], Any]:
    """A sort key with :meth:`TableSchema.sort_key`'s order, cheaper to compare.

    The demo tables have one-column keys: their order key is the value
    itself (an int for numeric ones), not a one-element tuple.
    """
    if len(schema.pk) != 1:
        return schema.sort_key
    if schema.columns[schema.pk[0]].numeric_key:
        return lambda key: int(key[0])
    return lambda key: key[0]


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
