"""What a CDC client builds from the stream: table contents and positions.

:class:`Replica` keeps tables from FIELD and ROW events the way a client
mirroring the database would (columns from the shard's last FIELD, primary
key from the FIELD's PRI_KEY flags), strictly: an insert of a key it already
holds, or an update/delete whose before image is not what it holds, is
recorded as a problem. So a replayed stream that ends equal to the cluster's
own tables, with no problems, lost no change and applied none twice.

:func:`units` lists the units of a stream with the position each one ends at
(from its VGTID), for checking which transactions arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.interop.official.official_checks import (
    COMMIT,
    COPY_COMPLETED,
    DDL,
    FIELD,
    OTHER,
    ROLLBACK,
    ROW,
    VGTID,
)

__all__ = [
    "Replica",
    "Unit",
    "caught_up",
    "decode_row",
    "flat_events",
    "positions",
    "seq_of",
    "units",
]

Key = tuple[bytes, ...]
Row = dict[str, bytes | None]
Contents = dict[str, dict[Key, Row]]

PRI_KEY_FLAG = 2  # query.MySqlFlag.PRI_KEY_FLAG


def decode_row(row: Any) -> list[bytes | None]:
    """A ``query.Row``: one length per column (-1 = NULL), values concatenated."""
    values: list[bytes | None] = []
    offset = 0
    for length in row.lengths:
        if length < 0:
            values.append(None)
            continue
        values.append(bytes(row.values[offset : offset + length]))
        offset += length
    if offset != len(row.values):
        raise ValueError(f"row lengths cover {offset} of {len(row.values)} value bytes")
    return values


def flat_events(responses: Iterable[Any]) -> list[Any]:
    return [event for response in responses for event in response.events]


@dataclass
class _Columns:
    names: list[str]
    key: list[int]  # indexes of the primary-key columns


@dataclass
class Replica:
    """Tables rebuilt from events; ``problems`` lists every change that did not fit."""

    contents: Contents = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _columns: dict[tuple[str, str, str], _Columns] = field(default_factory=dict)

    def apply(self, events: Iterable[Any]) -> None:
        for event in events:
            if event.type == FIELD:
                self._field(event)
            elif event.type == ROW:
                self._row(event)

    def _field(self, event: Any) -> None:
        body = event.field_event
        names = [f.name for f in body.fields]
        key = [i for i, f in enumerate(body.fields) if f.flags & PRI_KEY_FLAG]
        if not key:
            self.problems.append(f"FIELD of {body.table_name}: no PRI_KEY column")
        self._columns[(event.keyspace, event.shard, body.table_name)] = _Columns(names, key)

    def _row(self, event: Any) -> None:
        body = event.row_event
        columns = self._columns.get((event.keyspace, event.shard, body.table_name))
        if columns is None:
            self.problems.append(f"ROW of {body.table_name} on {event.shard}: no FIELD yet")
            return
        table = self.contents.setdefault(body.table_name.rpartition(".")[2], {})
        for change in body.row_changes:
            before = self._image(columns, change.before) if change.HasField("before") else None
            after = self._image(columns, change.after) if change.HasField("after") else None
            if before is not None:
                key = self._key(columns, before)
                held = table.pop(key, None)
                if held != before:
                    self.problems.append(
                        f"{body.table_name} {key}: before image {before} but held {held}"
                    )
            if after is not None:
                key = self._key(columns, after)
                if key in table:
                    self.problems.append(f"{body.table_name} {key}: inserted twice")
                table[key] = after

    @staticmethod
    def _image(columns: _Columns, row: Any) -> Row:
        values = decode_row(row)
        if len(values) != len(columns.names):
            raise ValueError(f"{len(values)} values for columns {columns.names}")
        return dict(zip(columns.names, values, strict=True))

    @staticmethod
    def _key(columns: _Columns, image: Row) -> Key:
        names = [columns.names[i] for i in columns.key]
        return tuple(image[n] or b"" for n in names)


def seq_of(gtid: str) -> int:
    """N of ``MySQL56/<uuid>:1-N``; 0 for an empty GTID set (``MySQL56/``)."""
    flavor, slash, gtid_set = gtid.partition("/")
    if not slash or flavor != "MySQL56":
        raise ValueError(f"not a MySQL56 position: {gtid!r}")
    if not gtid_set:
        return 0
    uuid, _, intervals = gtid_set.partition(":")
    if "," in intervals or not uuid:
        raise ValueError(f"expected one source uuid: {gtid!r}")
    return int(intervals.rpartition("-")[2])


def positions(vgtid: Any) -> dict[str, str]:
    """``{shard: gtid}`` of a VGtid (one keyspace)."""
    return {sg.shard: sg.gtid for sg in vgtid.shard_gtids}


@dataclass(frozen=True)
class Unit:
    """A unit of the stream that a VGTID positions: where it ends and at which position."""

    shard: str
    kind: int  # COMMIT, DDL, OTHER or ROLLBACK
    seq: int  # the unit's own shard's N in its last VGTID
    vgtid: Any
    end: int  # index of its last event in flat_events(responses)
    # Sent while its shard copies: between the first VGTID listing table_p_ks
    # for the shard and the shard's COPY_COMPLETED.
    copying: bool


def units(responses: Iterable[Any]) -> Iterator[Unit]:
    """Every unit ending in COMMIT/DDL/OTHER/ROLLBACK that carries a VGTID."""
    last_vgtid: Any = None
    copied: set[str] = set()
    copying: set[str] = set()
    for index, event in enumerate(flat_events(responses)):
        if event.type == VGTID:
            last_vgtid = event.vgtid
            for sg in event.vgtid.shard_gtids:
                if sg.table_p_ks and sg.shard not in copied:
                    copying.add(sg.shard)
        elif event.type == COPY_COMPLETED and event.shard:
            copied.add(event.shard)
            copying.discard(event.shard)
        elif event.type in (COMMIT, DDL, OTHER, ROLLBACK) and last_vgtid is not None:
            gtid = positions(last_vgtid).get(event.shard, "")
            seq = -1 if gtid in ("", "current") else seq_of(gtid)
            yield Unit(event.shard, event.type, seq, last_vgtid, index, event.shard in copying)
            last_vgtid = None


def caught_up(want: Callable[[], dict[str, str]]) -> Callable[[list[Any]], bool]:
    """A predicate: the stream's last VGTID is at ``want()`` (``{shard: position}``)."""

    def check(responses: list[Any]) -> bool:
        for response in reversed(responses):
            for event in reversed(response.events):
                if event.type == VGTID:
                    return positions(event.vgtid) == want()
        return False

    return check
