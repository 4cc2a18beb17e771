"""Decoding VStream row images into typed Python values.

A ROW event carries ``query.Row`` images that mean nothing without the column
list of the FIELD event sent before it for the same (keyspace, shard, table).
:class:`SchemaCache` keeps those column lists; :func:`decode_row` turns one
image into ``{column: value}``; :meth:`SchemaCache.changes` turns a whole
RowEvent into :class:`RowChangeRecord` values (insert, update, delete).

Rules this module keeps:

- NULL and empty are different: ``None`` for SQL NULL, ``""``/``b""``-derived
  empties for zero-length values.
- Values are typed by ``query.Type``: integers (signed and unsigned) become
  ``int``; FLOAT32/FLOAT64 become ``float``; DECIMAL stays a string so no
  precision is lost; temporal types keep MySQL's text form (``2024-01-31``,
  ``2024-01-31 12:00:00.5``, ``-838:59:59``, ``2024``); BIT becomes the ``int``
  of its big-endian bytes; ENUM a string; SET a list of strings; JSON is
  parsed; binary types (BINARY, VARBINARY, BLOB, GEOMETRY, VECTOR, RAW) become
  base64 text so they survive JSON output.
- A ROW whose table has no known FIELD raises :class:`RowDecodeError` naming
  the table and shard. Rows are never dropped silently.

Everything here is synchronous and pure; there is nothing to cancel.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vsmux.proto import binlogdata, query

__all__ = [
    "RawChange",
    "RowChangeRecord",
    "RowDecodeError",
    "SchemaCache",
    "bare_table_name",
    "decode_row",
    "decode_value",
    "row_changes",
]

T = query.Type
Op = Literal["insert", "update", "delete"]

# query.Type values carry flag bits (query.Flag) that classify types this module
# has no explicit rule for, e.g. types added to Vitess after this was written.
_IS_INTEGRAL = 256
_IS_FLOAT = 1024
_IS_BINARY = 8192


class RowDecodeError(ValueError):
    """A row image that cannot be decoded; the message says where and why."""


def _text(raw: bytes) -> str:
    # vttablet streams text in utf8mb4; replace anything undecodable rather
    # than fail a whole stream on one odd byte.
    return raw.decode("utf-8", errors="replace")


def _integer(raw: bytes) -> int:
    return int(raw.decode("ascii"))


def _float(raw: bytes) -> float:
    return float(raw.decode("ascii"))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _bit(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _set(raw: bytes) -> list[str]:
    return _text(raw).split(",") if raw else []


def _json(raw: bytes) -> Any:
    return json.loads(raw)


_INTEGER_TYPES = (
    T.INT8,
    T.UINT8,
    T.INT16,
    T.UINT16,
    T.INT24,
    T.UINT24,
    T.INT32,
    T.UINT32,
    T.INT64,
    T.UINT64,
)
_BINARY_TYPES = (T.BINARY, T.VARBINARY, T.BLOB, T.GEOMETRY, T.VECTOR, T.RAW)
_TEXT_TYPES = (
    T.DECIMAL,
    T.TIMESTAMP,
    T.DATE,
    T.TIME,
    T.DATETIME,
    T.YEAR,
    T.TEXT,
    T.VARCHAR,
    T.CHAR,
    T.ENUM,
    T.HEXNUM,
    T.HEXVAL,
    T.BITNUM,
    T.EXPRESSION,
)

_DECODERS: dict[int, Callable[[bytes], Any]] = {
    **{int(t): _integer for t in _INTEGER_TYPES},
    **{int(t): _b64 for t in _BINARY_TYPES},
    **{int(t): _text for t in _TEXT_TYPES},
    int(T.FLOAT32): _float,
    int(T.FLOAT64): _float,
    int(T.BIT): _bit,
    int(T.SET): _set,
    int(T.JSON): _json,
}


def _fallback(type_value: int) -> Callable[[bytes], Any]:
    if type_value & _IS_BINARY:
        return _b64
    if type_value & _IS_INTEGRAL:
        return _integer
    if type_value & _IS_FLOAT:
        return _float
    return _text


def decode_value(type_: query.Type | int, raw: bytes) -> Any:
    """One non-NULL column value (MySQL text form, or raw bytes) as a Python value.

    Raises ValueError (or a subclass) when the bytes do not fit the type.
    """
    type_value = int(type_)
    if type_value == int(T.NULL_TYPE):
        return None
    decoder = _DECODERS.get(type_value) or _fallback(type_value)
    return decoder(raw)


def decode_row(fields: Sequence[query.Field], row: query.Row) -> dict[str, Any]:
    """``{column name: value}`` for one row image, in FIELD order.

    ``row.lengths`` has one entry per field: -1 is NULL (``None``), anything
    else is the length of the value's bytes within ``row.values``.
    Raises :class:`RowDecodeError` naming the column on any mismatch.
    """
    lengths = row.lengths
    if len(lengths) != len(fields):
        raise RowDecodeError(
            f"row has {len(lengths)} values but the table has {len(fields)} columns"
        )
    values = row.values
    out: dict[str, Any] = {}
    offset = 0
    for field, length in zip(fields, lengths, strict=True):
        if length == -1:
            out[field.name] = None
            continue
        if length < -1 or offset + length > len(values):
            raise RowDecodeError(
                f"column {field.name!r}: length {length} does not fit the row's "
                f"{len(values)} value bytes"
            )
        raw = values[offset : offset + length]
        offset += length
        try:
            out[field.name] = decode_value(field.type, raw)
        except ValueError as exc:
            type_name = getattr(field.type, "name", str(field.type))
            raise RowDecodeError(
                f"column {field.name!r}: {raw[:40]!r} is not a valid {type_name} value"
            ) from exc
    if offset != len(values):
        raise RowDecodeError(f"row has {len(values) - offset} bytes beyond its last column")
    return out


@dataclass(frozen=True, slots=True)
class RowChangeRecord:
    """One decoded row change.

    ``data`` is the row after the change (for deletes: the deleted row);
    ``old`` holds, for updates only, the previous values of the columns that
    changed; ``before`` is the full previous image (updates and deletes).
    """

    op: Op
    data: dict[str, Any]
    old: dict[str, Any] | None = None
    before: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RawChange:
    """A row change's undecoded images with the columns that describe them.

    For formats that render values their own way (Debezium's): ``fields`` is
    the table's FIELD column list, ``enum_set_string_values`` that FIELD
    event's flag (ENUM/SET values arrive as names, not numbers).
    """

    fields: Sequence[query.Field]
    before: query.Row | None
    after: query.Row | None
    enum_set_string_values: bool = False


def row_changes(fields: Sequence[query.Field], event: binlogdata.RowEvent) -> list[RowChangeRecord]:
    """Every change of ``event`` decoded with ``fields`` (raises RowDecodeError)."""
    records = []
    for change in event.row_changes:
        before = decode_row(fields, change.before) if change.before is not None else None
        after = decode_row(fields, change.after) if change.after is not None else None
        if before is None and after is not None:
            records.append(RowChangeRecord("insert", after))
        elif before is not None and after is None:
            records.append(RowChangeRecord("delete", before, before=before))
        elif before is not None and after is not None:
            old = {k: v for k, v in before.items() if k not in after or after[k] != v}
            records.append(RowChangeRecord("update", after, old=old, before=before))
        else:
            raise RowDecodeError("row change has neither a before nor an after image")
    return records


def bare_table_name(table_name: str, keyspace: str) -> str:
    """``t`` for ``ks.t`` (gateways prefix the keyspace unless asked not to)."""
    prefix = f"{keyspace}."
    if keyspace and table_name.startswith(prefix):
        return table_name[len(prefix) :]
    return table_name


class SchemaCache:
    """Column lists per (keyspace, shard, table), learned from FIELD events.

    A new FIELD for a table replaces the old one (the table changed or the
    stream restarted). After a DDL the server resends FIELD only for the
    table the DDL changed, before that table's next ROW; the shard's other
    tables keep their columns. So :meth:`ddl_applied` (alias
    :meth:`forget_shard`) only marks the shard's tables stale: they are still
    used, and a row that no longer fits them fails with a message saying a
    DDL came without a new FIELD. :meth:`clear` forgets everything (a new
    stream resends every FIELD it needs).
    """

    def __init__(self) -> None:
        self._fields: dict[tuple[str, str, str], list[query.Field]] = {}
        self._stale: set[tuple[str, str, str]] = set()
        # Tables whose last FIELD said ENUM/SET values are sent as names.
        self._enum_set_strings: set[tuple[str, str, str]] = set()

    def learn(self, event: binlogdata.FieldEvent, keyspace: str = "", shard: str = "") -> None:
        """Record a FIELD event; its own keyspace/shard win over the given ones."""
        ks = event.keyspace or keyspace
        sh = event.shard or shard
        key = (ks, sh, bare_table_name(event.table_name, ks))
        self._fields[key] = list(event.fields)
        self._stale.discard(key)
        if event.enum_set_string_values:
            self._enum_set_strings.add(key)
        else:
            self._enum_set_strings.discard(key)

    def ddl_applied(self, keyspace: str, shard: str) -> None:
        """A DDL ran on one shard: its tables' columns may be out of date."""
        self._stale.update(k for k in self._fields if k[0] == keyspace and k[1] == shard)

    forget_shard = ddl_applied

    def clear(self) -> None:
        """Forget everything (a new stream resends every FIELD it needs)."""
        self._fields.clear()
        self._stale.clear()
        self._enum_set_strings.clear()

    def fields(self, keyspace: str, shard: str, table: str) -> list[query.Field]:
        """The known columns of a table, or RowDecodeError naming it."""
        try:
            return self._fields[(keyspace, shard, table)]
        except KeyError:
            raise RowDecodeError(
                f"ROW for table {keyspace}.{table} on shard {keyspace}/{shard} arrived "
                "before any FIELD event describing it; the server must send FIELD first"
            ) from None

    def raw_changes(
        self, event: binlogdata.RowEvent, keyspace: str = "", shard: str = ""
    ) -> list[RawChange]:
        """The undecoded changes of a RowEvent with their columns (RowDecodeError if unknown)."""
        ks = event.keyspace or keyspace
        sh = event.shard or shard
        key = (ks, sh, bare_table_name(event.table_name, ks))
        fields = self.fields(*key)
        strings = key in self._enum_set_strings
        return [RawChange(fields, c.before, c.after, strings) for c in event.row_changes]

    def is_stale(self, keyspace: str, shard: str, table: str) -> bool:
        """Whether a DDL ran on the table's shard since its last FIELD."""
        return (keyspace, shard, table) in self._stale

    def __len__(self) -> int:
        return len(self._fields)

    def changes(
        self, event: binlogdata.RowEvent, keyspace: str = "", shard: str = ""
    ) -> tuple[str, str, str, list[RowChangeRecord]]:
        """(keyspace, shard, bare table, records) for a RowEvent.

        Raises :class:`RowDecodeError` naming the table and shard when its
        FIELD is unknown or an image does not decode.
        """
        ks = event.keyspace or keyspace
        sh = event.shard or shard
        table = bare_table_name(event.table_name, ks)
        fields = self.fields(ks, sh, table)
        try:
            return ks, sh, table, row_changes(fields, event)
        except RowDecodeError as exc:
            hint = ""
            if self.is_stale(ks, sh, table):
                hint = " (a DDL ran on this shard and no new FIELD for the table followed)"
            raise RowDecodeError(f"table {ks}.{table} on shard {ks}/{sh}: {exc}{hint}") from exc
