"""Hand-rolled protobuf encoding of the events a simulated tablet sends.

ROW events are the bulk of every stream, so they are encoded directly from
raw values (no message objects); rarer events (FIELD, JOURNAL, LASTPK) go
through the generated classes. Every encoder here leaves ``current_time`` out:
:func:`stamp` appends it when the event is sent, which protobuf permits (field
order is free), so one commit's bytes are shared by every stream.

Row values follow the ``query.Row`` rule: one length per column, -1 for NULL,
and the non-NULL values concatenated in column order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vsmux.proto import binlogdata, query
from vsmux.wire.frames import Frame
from vsmux.wire.varint import encode_varint as _varint

__all__ = [
    "RowImage",
    "current_time_field",
    "decode_row",
    "encode_event",
    "encode_field_event",
    "encode_row",
    "encode_row_event",
    "simple_event",
    "stamp",
]

RowImage = tuple[bytes | None, ...]

_CURRENT_TIME_KEY = b"\xa0\x01"  # field 20, varint


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _field(key: bytes, payload: bytes) -> bytes:
    return key + _varint(len(payload)) + payload


def encode_row(values: Sequence[bytes | None]) -> bytes:
    """Encoded ``query.Row`` for ``values`` (None is NULL)."""
    lengths = b"".join(_varint(_zigzag(-1 if v is None else len(v))) for v in values)
    data = b"".join(v for v in values if v)
    out = _field(b"\x0a", lengths)
    if data:
        out += _field(b"\x12", data)
    return out


def decode_row(row: query.Row) -> RowImage:
    """Values of a ``query.Row`` (None for NULL)."""
    out: list[bytes | None] = []
    pos = 0
    for length in row.lengths:
        if length < 0:
            out.append(None)
        else:
            out.append(row.values[pos : pos + length])
            pos += length
    return tuple(out)


def _header(etype: int, timestamp: int, keyspace: str, shard: str) -> tuple[bytes, bytes]:
    head = b"\x08" + _varint(etype)
    if timestamp:
        head += b"\x10" + _varint(timestamp)
    tail = _field(b"\xb2\x01", keyspace.encode()) + _field(b"\xba\x01", shard.encode())
    return head, tail


def simple_event(
    etype: binlogdata.VEventType,
    timestamp: int,
    keyspace: str,
    shard: str,
    *,
    gtid: str = "",
    statement: str = "",
) -> bytes:
    """BEGIN/COMMIT/GTID/DDL/OTHER/HEARTBEAT/COPY_COMPLETED without current_time."""
    head, tail = _header(int(etype), timestamp, keyspace, shard)
    if gtid:
        head += _field(b"\x1a", gtid.encode())
    if statement:
        head += _field(b"\x22", statement.encode())
    return head + tail


def encode_row_event(
    timestamp: int,
    keyspace: str,
    shard: str,
    table: str,
    changes: Iterable[tuple[RowImage | None, RowImage | None]],
) -> bytes:
    """A ROW VEvent for ``table`` with (before, after) images."""
    parts = [_field(b"\x0a", table.encode())]
    for before, after in changes:
        change = b""
        if before is not None:
            change += _field(b"\x0a", encode_row(before))
        if after is not None:
            change += _field(b"\x12", encode_row(after))
        parts.append(_field(b"\x12", change))
    parts.append(_field(b"\x1a", keyspace.encode()))
    parts.append(_field(b"\x22", shard.encode()))
    head, tail = _header(int(binlogdata.VEventType.ROW), timestamp, keyspace, shard)
    return head + _field(b"\x2a", b"".join(parts)) + tail


def encode_event(event: binlogdata.VEvent) -> bytes:
    """Bytes of a generated-class event (its current_time must be unset)."""
    return bytes(event)


def stamp(etype: int, raw: bytes, now_ns: int) -> Frame:
    """The frame for ``raw`` with ``current_time`` set to ``now_ns``."""
    return Frame(etype, raw + current_time_field(now_ns))


def current_time_field(now_ns: int) -> bytes:
    """The encoded ``current_time`` field: append it to an event to stamp it.

    A response stamps all its events with one time, so the field is encoded
    once per response rather than once per event (every stream of every
    client stamps every event it sends).
    """
    return _CURRENT_TIME_KEY + _varint(now_ns)


def encode_field_event(timestamp: int, keyspace: str, shard: str, payload: bytes) -> bytes:
    """A FIELD VEvent around an encoded ``binlogdata.FieldEvent`` payload."""
    head, tail = _header(int(binlogdata.VEventType.FIELD), timestamp, keyspace, shard)
    return head + _field(b"\x32", payload) + tail
