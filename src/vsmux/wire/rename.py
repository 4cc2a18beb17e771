"""Rewriting the table name of a FIELD or ROW event at the byte level.

A client that asks for several keyspaces sees table names as
``<keyspace>.<table>``. The name sits at the front of the event's
``row_event`` (5) or ``field_event`` (6) sub-message, so the rewrite is three
slices: the bytes before that sub-message's length, a new length, the new
``table_name`` field, and everything after the old one. Rows are copied as
bytes, never decoded.

Encoders write fields in number order and each singular field once (the
canonical form every protobuf library, and so every Vitess component,
produces). The fast path relies on that: it renames the first
``row_event``/``field_event`` and the ``table_name`` at its front; a
sub-message without a ``table_name`` gets one inserted there. Bytes that are
not a well-formed event raise :class:`FrameError`.
"""

from __future__ import annotations

from vsmux.wire.errors import FrameError
from vsmux.wire.frames import Frame
from vsmux.wire.scan import skip_field
from vsmux.wire.varint import TABLE_LIMIT, VARINT, encode_varint, read_varint

__all__ = ["rename_table"]

_ROW = 12
_FIELD = 13
_ROW_EVENT_KEY = 0x2A  # field 5, wire type 2
_FIELD_EVENT_KEY = 0x32  # field 6, wire type 2
_TABLE_NAME_KEY = 0x0A  # field 1, wire type 2

# (keyspace, encoded old table_name field) -> encoded new table_name field.
# Table names repeat endlessly, so this saves the encode and concatenation per
# event. Bounded so a stream of ever-new names cannot grow memory: a gateway
# serves far fewer tables than this, and a full cache is simply dropped.
_CACHE_LIMIT = 4096
_cache: dict[tuple[str, bytes], bytes] = {}


def _new_name_field(keyspace: str, old_field: bytes) -> bytes:
    if old_field:
        _, start = read_varint(old_field, 1)
        name = old_field[start:]
    else:
        name = b""
    full = keyspace.encode() + b"." + name
    field = b"\x0a" + encode_varint(len(full)) + full
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[keyspace, old_field] = field
    return field


def rename_table(frame: Frame, keyspace: str) -> Frame:
    """``frame`` with its table name prefixed by ``keyspace.`` (FIELD and ROW only).

    Other event types, and FIELD/ROW events without a sub-message, are
    returned unchanged (the same object). The header of the new frame is the
    same as the old one's.
    """
    kind = frame.type
    if kind == _ROW:
        want = _ROW_EVENT_KEY
    elif kind == _FIELD:
        want = _FIELD_EVENT_KEY
    else:
        return frame
    raw = frame.raw
    end = len(raw)
    try:
        pos = 0
        while True:  # bounded: skip_field always advances pos or raises
            if pos >= end:
                return frame
            if raw[pos] == want:
                break
            pos = skip_field(raw, pos, end)
        pos += 1
        length = raw[pos]
        if length < 0x80:
            start = pos + 1
        else:
            length, start = read_varint(raw, pos)
        stop = start + length
        if stop > end:
            raise FrameError("table event runs past the end of the event")
        if start < stop and raw[start] == _TABLE_NAME_KEY:
            name_len = raw[start + 1]
            if name_len < 0x80:
                name_end = start + 2 + name_len
            else:
                name_len, name_start = read_varint(raw, start + 1)
                name_end = name_start + name_len
            if name_end > stop:
                raise FrameError("table name runs past the end of the table event")
            old_field = raw[start:name_end]
        else:
            name_end = start
            old_field = b""
    except IndexError:
        raise FrameError("truncated table event") from None
    new_field = _cache.get((keyspace, old_field))
    if new_field is None:
        new_field = _new_name_field(keyspace, old_field)
    new_length = length - (name_end - start) + len(new_field)
    renamed = Frame(
        kind,
        b"".join(
            (
                raw[:pos],
                VARINT[new_length] if new_length < TABLE_LIMIT else encode_varint(new_length),
                new_field,
                raw[name_end:],
            )
        ),
    )
    renamed._header = frame._header
    return renamed
