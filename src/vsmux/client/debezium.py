"""Debezium's Vitess connector's change records, rebuilt from VStream rows.

``vsmux tail --format debezium`` prints, for each row change, the record value
Debezium's Vitess connector (``io.debezium.connector.vitess``, 3.x) produces
for the same VStream events with its default settings, as Kafka Connect's
JSON converter renders it without schemas. The rules below follow the
connector's ``VitessType``, ``VitessValueConverter`` and Debezium's
``JdbcValueConverters`` under those defaults:

- ``time.precision.mode=adaptive_time_microseconds``: DATE is days since
  1970-01-01; TIME microseconds (negative and over 24 h allowed); DATETIME
  epoch milliseconds up to 3 fractional digits, microseconds up to 6,
  nanoseconds beyond, read as UTC; TIMESTAMP an ISO-8601 string in UTC
  (``2024-01-31T12:00:00Z``, with exactly as many fractional digits as the
  column declares). Zero dates become null, or 0 / the epoch for a NOT NULL
  column.
- DECIMAL is the text VStream sends (the connector maps it to a string, so
  ``decimal.handling.mode`` does not apply); CHAR, VARCHAR, TEXT and JSON are
  text (JSON is not parsed); BIGINT UNSIGNED is a string
  (``bigint.unsigned.handling.mode=string``); other integers and YEAR are
  numbers; FLOAT is the 32-bit value widened to a double, DOUBLE a double.
- ``binary.handling.mode=bytes``: BINARY, VARBINARY and BLOB are base64 (the
  JSON converter's rendering of bytes), except those whose column type says
  they hold text (``varchar``, ``char``, ``text`` with a binary collation),
  which are text.
- BIT(1) is a boolean, wider BIT the raw bytes (base64). ENUM is the value's
  name and SET the names joined by commas (a number is turned into names when
  the FIELD event does not say values are strings).
- Columns of types the connector does not know (GEOMETRY, VECTOR, ...) are
  left out, as with ``include.unknown.datatypes=false``.

The envelope is ``before``, ``after``, ``source``, ``transaction`` (null, as
with ``provide.transaction.metadata=false``; with ``transaction_metadata`` the
block the connector adds when it is true: ``id`` (the transaction's VGtid
text), ``total_order`` and ``data_collection_order``), ``op`` (``c``, ``u``, ``d``; the
connector has no ``r``: rows of a VStream copy are ``c`` with
``snapshot: "false"`` too), and ``ts_ms``/``ts_us``/``ts_ns`` (when the record
was made). ``source`` holds version, connector ``vitess``, name, ts_ms/us/ns
(commit time), snapshot, db (``""``), sequence (null), keyspace, table, shard
and vgtid (the transaction's VGtid as the connector serialises it).

Pure functions; nothing to cancel.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from vsmux import __version__
from vsmux.client.assembler import RowChange
from vsmux.client.rows import RawChange
from vsmux.proto import binlogdata, query

__all__ = [
    "CONNECTOR",
    "VERSION",
    "column_converter",
    "envelope",
    "row_value",
    "transaction_blocks",
    "vgtid_text",
]

T = query.Type
CONNECTOR = "vitess"
# source.version: the connector writes its own version; tail writes vsmux's.
VERSION = f"vsmux-{__version__}"

_NOT_NULL = 1  # query.Field.flags: MySQL's NOT_NULL_FLAG

# A column's value from its raw VStream bytes (never called with SQL NULL).
Convert = Callable[[bytes], Any]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _int(raw: bytes) -> int:
    return int(raw)


def _double(raw: bytes) -> float:
    return float(raw)


def _float32(raw: bytes) -> float:
    """Java's ``Float.valueOf(text).doubleValue()``: the nearest float, widened."""
    value = float(raw)
    try:
        narrowed: float = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return value
    return narrowed


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _bit_bool(raw: bytes) -> bool:
    return len(raw) > 0 and raw[0] != 0


# --- dates and times ------------------------------------------------------------

_DATE = re.compile(rb"([0-9]*)-([0-9]*)-([0-9]*)")
_DATETIME = re.compile(rb"([0-9]+)-([0-9]+)-([0-9]+) ([0-9]+):([0-9]+):([0-9]+)(?:\.([0-9]{0,9}))?")
_TIME = re.compile(rb"(-?[0-9]*):([0-9]*)(:([0-9]*))?(\.([0-9]*))?")


class _Null(Exception):
    """A value the connector turns into null (a zero date)."""


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (any year, like LocalDate)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _date(raw: bytes) -> int:
    match = _DATE.fullmatch(raw)
    if match is None:
        raise ValueError(f"not a DATE: {raw!r}")
    year, month, day = (int(g) for g in match.groups())
    if month == 0 or day == 0:
        raise _Null
    return _days_from_civil(year, month, day)


def _datetime_parts(raw: bytes) -> tuple[int, int]:
    """(seconds since the epoch read as UTC, nanoseconds) of a DATETIME's text."""
    match = _DATETIME.fullmatch(raw)
    if match is None:
        raise ValueError(f"not a DATETIME: {raw!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if month == 0 or day == 0:
        raise _Null
    fraction = match.group(7) or b""
    nanos = int(fraction.ljust(9, b"0")) if fraction else 0
    days = _days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second, nanos


def _datetime_converter(decimals: int) -> Convert:
    if decimals <= 3:
        return lambda raw: _epoch(raw, 1000, 1_000_000)
    if decimals <= 6:
        return lambda raw: _epoch(raw, 1_000_000, 1000)
    return lambda raw: _epoch(raw, 1_000_000_000, 1)


def _epoch(raw: bytes, per_second: int, nanos_per_unit: int) -> int:
    seconds, nanos = _datetime_parts(raw)
    return seconds * per_second + nanos // nanos_per_unit


def _time(raw: bytes) -> int:
    """Microseconds of a TIME (``-838:59:59`` to ``838:59:59``)."""
    match = _TIME.fullmatch(raw)
    if match is None:
        raise ValueError(f"not a TIME: {raw!r}")
    hours, minutes = match.group(1), match.group(2)
    negative = raw.startswith(b"-")
    total = abs(int(hours or b"0")) * 3600 + int(minutes or b"0") * 60
    nanos = 0
    if match.group(4) is not None:
        total += int(match.group(4) or b"0")
        if match.group(6):
            nanos = int(match.group(6)[:9].ljust(9, b"0"))
    micros = (total * 1_000_000_000 + nanos) // 1000
    return -micros if negative else micros


def _timestamp_converter(decimals: int) -> Convert:
    def convert(raw: bytes) -> str:
        if re.fullmatch(rb"[0-9]{4}-00-00.*", raw, re.DOTALL):
            raise _Null
        match = _DATETIME.fullmatch(raw)
        if match is None:
            raise _Null  # the connector logs the value as invalid and writes null
        text = _text(raw)
        date, time = text.split(" ")
        seconds_part = time.split(".")[0]
        fraction = match.group(7) or b""
        nanos = int(fraction.ljust(9, b"0")) if fraction else 0
        if 1 <= decimals <= 9:
            digits = f"{nanos:09d}"[:decimals]
            return f"{date}T{seconds_part}.{digits}Z"
        if nanos:
            return f"{date}T{seconds_part}.{f'{nanos:09d}'.rstrip('0')}Z"
        return f"{date}T{seconds_part}Z"

    return convert


# --- ENUM and SET -----------------------------------------------------------------


def enum_values(column_type: str) -> list[str]:
    """The permitted values of ``enum('a','b')`` / ``set('a','b')`` ('' quotes a ')."""
    values: list[str] = []
    current: list[str] = []
    inside = False
    i = 0
    while i < len(column_type):
        char = column_type[i]
        if char == "'":
            if i + 1 < len(column_type) and column_type[i + 1] == "'" and inside:
                current.append("'")
                i += 2
                continue
            if inside:
                values.append("".join(current))
                current = []
            inside = not inside
        elif inside:
            current.append(char)
        i += 1
    return values


def _enum_converter(options: list[str], string_values: bool) -> Convert:
    def convert(raw: bytes) -> str:
        if string_values or not raw.isdigit():
            return _text(raw)
        index = int(raw) - 1
        return options[index] if 0 <= index < len(options) else ""

    return convert


def _set_converter(options: list[str], string_values: bool) -> Convert:
    def convert(raw: bytes) -> str:
        if string_values or not raw.isdigit():
            return _text(raw)
        bits = int(raw)
        parts: list[str] = []
        index = 0
        while bits:
            if bits & 1:
                # The connector writes the comma even for an unknown bit.
                parts.append(options[index] if index < len(options) else "")
            index += 1
            bits >>= 1
        return ",".join(parts)

    return convert


# --- per column ---------------------------------------------------------------------

_INTEGERS = frozenset(
    int(t)
    for t in (
        T.INT8,
        T.UINT8,
        T.INT16,
        T.UINT16,
        T.INT24,
        T.UINT24,
        T.INT32,
        T.UINT32,
        T.INT64,
        T.YEAR,
    )
)
_TEXT = frozenset(int(t) for t in (T.VARCHAR, T.CHAR, T.TEXT, T.JSON, T.DECIMAL, T.UINT64))
_TEXT_BLOBS = ("TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT")


@lru_cache(maxsize=4096)
def _converter(
    type_value: int, column_type: str, column_length: int, decimals: int, string_values: bool
) -> tuple[Convert, Any] | None:
    """(conversion, value for NULL in a NOT NULL column), or None for a left-out column."""
    upper = column_type.upper()
    if type_value in _INTEGERS:
        return _int, 0
    if type_value in _TEXT:
        return _text, ""
    if type_value == int(T.FLOAT32):
        return _float32, 0.0
    if type_value == int(T.FLOAT64):
        return _double, 0.0
    if type_value == int(T.BLOB):
        if upper.startswith(_TEXT_BLOBS):
            return _text, ""
        return _b64, None
    if type_value in (int(T.VARBINARY), int(T.BINARY)):
        if type_value == int(T.VARBINARY) and upper.startswith("VARCHAR"):
            return _text, ""
        if upper.startswith("CHAR"):
            return _text, ""
        if upper.startswith("ENUM"):
            return _enum_converter(enum_values(column_type), string_values), ""
        if upper.startswith("SET"):
            return _set_converter(enum_values(column_type), string_values), ""
        return _b64, None
    if type_value == int(T.ENUM):
        return _enum_converter(enum_values(column_type), string_values), ""
    if type_value == int(T.SET):
        return _set_converter(enum_values(column_type), string_values), ""
    if type_value == int(T.BIT):
        if column_length <= 1:
            return _bit_bool, False
        return _b64, None
    if type_value == int(T.DATE):
        return _date, 0
    if type_value == int(T.TIME):
        return _time, 0
    if type_value == int(T.DATETIME):
        return _datetime_converter(decimals), 0
    if type_value == int(T.TIMESTAMP):
        return _timestamp_converter(decimals), "1970-01-01T00:00:00Z"
    return None


def column_converter(
    field: query.Field, string_values: bool = False
) -> Callable[[bytes | None], Any] | None:
    """How the connector renders one column's values; None if it leaves the column out.

    ``string_values`` is the FIELD event's ``enum_set_string_values``.
    """
    found = _converter(
        int(field.type), field.column_type, field.column_length, field.decimals, string_values
    )
    if found is None:
        return None
    convert, fallback = found
    nullable = not field.flags & _NOT_NULL

    def value(raw: bytes | None) -> Any:
        if raw is not None:
            try:
                return convert(raw)
            except _Null:
                pass
        return None if nullable else fallback

    return value


def row_value(
    fields: Sequence[query.Field], row: query.Row | None, string_values: bool = False
) -> dict[str, Any] | None:
    """A row image as the connector's ``before``/``after`` struct (None for no image).

    Raises ValueError when the image does not fit the columns.
    """
    if row is None:
        return None
    if len(row.lengths) != len(fields):
        raise ValueError(f"row has {len(row.lengths)} values but the table has {len(fields)}")
    out: dict[str, Any] = {}
    values = row.values
    offset = 0
    for field, length in zip(fields, row.lengths, strict=True):
        raw = None
        if length >= 0:
            raw = values[offset : offset + length]
            offset += length
        convert = column_converter(field, string_values)
        if convert is not None:
            out[field.name] = convert(raw)
    return out


# --- positions ----------------------------------------------------------------------

_LOWER_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-f]{4})")


def _jackson(value: Any) -> str:
    """Compact JSON as Jackson writes it (upper-case hex in \\u escapes)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return _LOWER_HEX_ESCAPE.sub(lambda m: m.group(1) + "\\u" + m.group(2).upper(), text)


def _lastpk(result: query.QueryResult | None) -> dict[str, Any]:
    result = result or query.QueryResult()
    return {
        "fields": [
            {
                "name": f.name,
                "type": query.Type(f.type).name,
                "charset": f.charset,
                "flags": f.flags,
            }
            for f in result.fields
        ],
        "rows": [
            {
                "lengths": [str(n) for n in r.lengths],
                "values": r.values.decode("utf-8", errors="replace"),
            }
            for r in result.rows
        ],
    }


def vgtid_text(vgtid: binlogdata.VGtid | None) -> str:
    """``source.vgtid``: the VGtid as the connector serialises it (``[]`` for none)."""
    if vgtid is None:
        return "[]"
    return _jackson(
        [
            {
                "keyspace": sg.keyspace,
                "shard": sg.shard,
                "gtid": sg.gtid,
                "table_p_ks": [
                    {"table_name": pk.table_name, "lastpk": _lastpk(pk.lastpk)}
                    for pk in sg.table_p_ks
                ],
            }
            for sg in vgtid.shard_gtids
        ]
    )


# --- the record ---------------------------------------------------------------------

_OPS = {"insert": "c", "update": "u", "delete": "d"}


def envelope(
    row: RowChange,
    *,
    name: str,
    commit_seconds: int,
    vgtid: str,
    now_ms: int,
    transaction: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The connector's record value for one row change (keys in the connector's order).

    ``transaction`` is the ``transaction`` block (see :func:`transaction_blocks`).
    """
    raw: RawChange | None = row.raw
    record = row.record
    if raw is not None:
        before = row_value(raw.fields, raw.before, raw.enum_set_string_values)
        after = row_value(raw.fields, raw.after, raw.enum_set_string_values)
    else:  # no raw images (built by hand): the decoded values are the best there is
        before = record.before
        after = None if record.op == "delete" else record.data
    return {
        "before": before,
        "after": after,
        "source": {
            "version": VERSION,
            "connector": CONNECTOR,
            "name": name,
            "ts_ms": commit_seconds * 1000,
            "snapshot": "false",
            "db": "",
            "sequence": None,
            "ts_us": commit_seconds * 1_000_000,
            "ts_ns": commit_seconds * 1_000_000_000,
            "keyspace": row.keyspace,
            "table": row.table,
            "shard": row.shard,
            "vgtid": vgtid,
        },
        "transaction": transaction,
        "op": _OPS[record.op],
        "ts_ms": now_ms,
        "ts_us": now_ms * 1000,
        "ts_ns": now_ms * 1_000_000,
    }


def transaction_blocks(rows: Sequence[RowChange], transaction_id: str) -> list[dict[str, Any]]:
    """The ``transaction`` block of each row of one transaction, as the connector
    writes it with ``provide.transaction.metadata=true``: the transaction's id (its
    VGtid text), the row's place among the transaction's rows and among its table's
    rows (both from 1)."""
    per_table: dict[tuple[str, str, str], int] = {}
    blocks = []
    for total, row in enumerate(rows, start=1):
        key = (row.shard, row.keyspace, row.table)
        per_table[key] = per_table.get(key, 0) + 1
        blocks.append(
            {"id": transaction_id, "total_order": total, "data_collection_order": per_table[key]}
        )
    return blocks
