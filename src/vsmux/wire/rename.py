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
expression, run in C (:data:`FAST_LAYOUT`); anything else takes a
field-by-field walk (:func:`renamed_parts_walk`). This module holds the
pieces of the rewrite: the one place that applies them is
:class:`vsmux.wire.pack.ResponsePacker`, which writes renamed events straight
into client responses; :func:`vsmux.wire.pack.rename_table` uses it for a
single frame.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from vsmux.wire.errors import FrameError
from vsmux.wire.scan import skip_field
from vsmux.wire.varint import encode_varint, read_varint

__all__ = [
    "FAST_LAYOUT",
    "FIELD",
    "ROW",
    "TableName",
    "find_table_name",
    "name_fields",
    "new_name_field",
    "renamed_parts_walk",
]

ROW = 12
FIELD = 13
_ROW_EVENT_KEY = 0x2A  # field 5, wire type 2
_FIELD_EVENT_KEY = 0x32  # field 6, wire type 2
_TABLE_NAME_KEY = 0x0A  # field 1, wire type 2

# keyspace -> encoded old table_name field -> encoded new table_name field.
# Table names repeat endlessly, so this saves the encode and concatenation per
# event. Bounded so a stream of ever-new names cannot grow memory: a gateway
# serves far fewer tables (and keyspaces) than this, and a full cache is
# simply dropped.
_CACHE_LIMIT = 4096
_cache: dict[str, dict[bytes, bytes]] = {}


def name_fields(keyspace: str) -> dict[bytes, bytes]:
    """The cache of ``keyspace``: encoded old table_name field -> new one."""
    names = _cache.get(keyspace)
    if names is None:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        names = _cache[keyspace] = {}
    return names


def new_name_field(keyspace: str, old_field: bytes) -> bytes:
    """The encoded ``table_name`` field ``<keyspace>.<old name>``, cached."""
    if old_field:
        _, start = read_varint(old_field, 1)
        name = old_field[start:]
    else:
        name = b""
    full = keyspace.encode() + b"." + name
    field = b"\x0a" + encode_varint(len(full)) + full
    names = name_fields(keyspace)
    if len(names) >= _CACHE_LIMIT:
        names.clear()
    names[old_field] = field
    return field


# The usual layout up to the table name's length byte: type, an optional
# timestamp varint, the sub-message key and its one- or two-byte length, then
# the table_name key and a one-byte length.
FAST_LAYOUT = {
    kind: re.compile(
        b"\\x08"
        + re.escape(bytes([kind]))
        + rb"(?:\x10[\x80-\xff]{0,9}[\x00-\x7f])?"
        + re.escape(bytes([key]))
        + rb"[\x80-\xff]?[\x00-\x7f]\x0a[\x00-\x7f]",
        re.DOTALL,
    ).match
    for kind, key in ((ROW, _ROW_EVENT_KEY), (FIELD, _FIELD_EVENT_KEY))
}


class TableName(NamedTuple):
    """Where a ROW or FIELD event's table name sits in its bytes."""

    key: int  # the row_event/field_event key
    length: int  # that sub-message's length
    start: int  # where the sub-message's content starts
    name_start: int  # the name's first byte (== name_end: no table_name field)
    name_end: int  # the end of the table_name field


def find_table_name(kind: int, raw: bytes) -> TableName | None:
    """Where the table name of a ROW or FIELD event is, walking field by field.

    None if the event has no ``row_event``/``field_event``; any layout is
    handled. Malformed bytes raise :class:`FrameError`.
    """
    want = _ROW_EVENT_KEY if kind == ROW else _FIELD_EVENT_KEY
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
        name_start = name_end = start
    return TableName(pos, length, start, name_start, name_end)


def renamed_parts_walk(
    kind: int, raw: bytes, keyspace: str
) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The renamed event as four pieces to join, walking the event field by field.

    The pieces are the bytes up to the sub-message's length, its new length,
    the new ``table_name`` field and the rest of the event; None if the event
    has no such sub-message. This handles any layout; the packer's fast path
    (:mod:`vsmux.wire.pack`) handles the usual one and falls back to this.
    """
    found = find_table_name(kind, raw)
    if found is None:
        return None
    old_field = raw[found.start : found.name_end]
    new_field = _cache.get(keyspace, {}).get(old_field) or new_name_field(keyspace, old_field)
    length = found.length + len(new_field) - len(old_field)
    return raw[: found.key + 1], encode_varint(length), new_field, raw[found.name_end :]
