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

Python pays per bytecode, so the usual layout (type, timestamp, then the
sub-message starting with a short table name) is recognised by one regular
expression, run in C; anything else takes a field-by-field walk.
"""

from __future__ import annotations

import re

from vsmux.wire.errors import FrameError
from vsmux.wire.frames import Frame
from vsmux.wire.scan import skip_field
from vsmux.wire.varint import TABLE_LIMIT, VARINT, encode_varint, read_varint

__all__ = ["RENAMED_TYPES", "rename_table", "renamed_parts"]

_ROW = 12
_FIELD = 13
_ROW_EVENT_KEY = 0x2A  # field 5, wire type 2
_FIELD_EVENT_KEY = 0x32  # field 6, wire type 2
_TABLE_NAME_KEY = 0x0A  # field 1, wire type 2

#: The event types whose table name gets the keyspace prefix.
RENAMED_TYPES = frozenset((_ROW, _FIELD))

# keyspace -> encoded old table_name field -> encoded new table_name field.
# Table names repeat endlessly, so this saves the encode and concatenation per
# event. Bounded so a stream of ever-new names cannot grow memory: a gateway
# serves far fewer tables (and keyspaces) than this, and a full cache is
# simply dropped.
_CACHE_LIMIT = 4096
_cache: dict[str, dict[bytes, bytes]] = {}


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
    names = _cache.setdefault(keyspace, {})
    if len(names) >= _CACHE_LIMIT:
        names.clear()
    names[old_field] = field
    return field


# The usual layout up to the table name's length byte: type, an optional
# timestamp varint, the sub-message key and its one- or two-byte length, then
# the table_name key and a one-byte length.
_FAST = {
    kind: re.compile(
        b"\\x08"
        + re.escape(bytes([kind]))
        + rb"(?:\x10[\x80-\xff]{0,9}[\x00-\x7f])?"
        + re.escape(bytes([key]))
        + rb"[\x80-\xff]?[\x00-\x7f]\x0a[\x00-\x7f]",
        re.DOTALL,
    ).match
    for kind, key in ((_ROW, _ROW_EVENT_KEY), (_FIELD, _FIELD_EVENT_KEY))
}


def renamed_parts(kind: int, raw: bytes, keyspace: str) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The renamed event ``raw`` as four pieces to concatenate, or None if it has no name.

    ``kind`` must be ROW or FIELD. The pieces are the bytes before the
    sub-message's length, its new length, the new ``table_name`` field and the
    rest of the event; callers join them (:func:`rename_table`) or write them
    straight into a response (:class:`vsmux.wire.pack.ResponsePacker`).
    Raises :class:`FrameError` for malformed bytes.
    """
    match = _FAST[kind](raw)
    if match is None:
        return _parts_walk(kind, raw, keyspace)
    name_start = match.end()
    # The sub-message's length ends 3 bytes before the name; it is two bytes
    # long when the byte before that is a continuation (the key is < 0x80).
    length = raw[name_start - 3]
    if raw[name_start - 4] >= 0x80:
        pos = name_start - 4
        length = (raw[pos] & 0x7F) | (length << 7)
    else:
        pos = name_start - 3
    name_end = name_start + raw[name_start - 1]
    # The sub-message starts at name_start - 2. If the name does not fit in it
    # the bytes only looked like the usual layout; the walk sorts that out.
    if name_end > name_start - 2 + length or name_start - 2 + length > len(raw):
        return _parts_walk(kind, raw, keyspace)
    old_field = raw[name_start - 2 : name_end]
    try:
        new_field = _cache[keyspace][old_field]
    except KeyError:
        new_field = _new_name_field(keyspace, old_field)
    length += len(new_field) - len(old_field)
    return (
        raw[:pos],
        VARINT[length] if length < TABLE_LIMIT else encode_varint(length),
        new_field,
        raw[name_end:],
    )


def rename_table(frame: Frame, keyspace: str) -> Frame:
    """``frame`` with its table name prefixed by ``keyspace.`` (FIELD and ROW only).

    Other event types, and FIELD/ROW events without a sub-message, are
    returned unchanged (the same object). The header of the new frame is the
    same as the old one's.
    """
    kind = frame.type
    if kind != _ROW and kind != _FIELD:
        return frame
    parts = renamed_parts(kind, frame.raw, keyspace)
    if parts is None:
        return frame
    return Frame(kind, b"".join(parts), frame._header)


def _parts_walk(kind: int, raw: bytes, keyspace: str) -> tuple[bytes, bytes, bytes, bytes] | None:
    """:func:`renamed_parts` for any layout, walking the event field by field."""
    want = _ROW_EVENT_KEY if kind == _ROW else _FIELD_EVENT_KEY
    end = len(raw)
    pos = 0
    while raw[pos : pos + 1] != bytes((want,)):  # bounded: skip_field advances or raises
        if pos >= end:
            return None
        pos = skip_field(raw, pos, end)
    length, start = read_varint(raw, pos + 1)
    stop = start + length
    if stop > end:
        raise FrameError("table event runs past the end of the event")
    if start < stop and raw[start] == _TABLE_NAME_KEY:
        name_length, name_start = read_varint(raw, start + 1)
        name_end = name_start + name_length
        if name_end > stop:
            raise FrameError("table name runs past the end of the table event")
    else:
        name_end = start
    old_field = raw[start:name_end]
    new_field = _cache.get(keyspace, {}).get(old_field) or _new_name_field(keyspace, old_field)
    length += len(new_field) - len(old_field)
    return raw[: pos + 1], encode_varint(length), new_field, raw[name_end:]
