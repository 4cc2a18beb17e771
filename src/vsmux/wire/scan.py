"""Walking encoded messages field by field in Python.

:func:`skip_field` serves the rename's fallback walk. :func:`scan_events` and
:func:`scan_header` are pure-Python references for what the hot path asks
upb to do (see :mod:`vsmux.wire.lite`): tests check that both agree, the
benchmark compares their speed, and a split that upb rejects is re-walked
here to say where the bytes are wrong.

Every loop here advances its position on each step and checks it against the
end of the buffer, so malformed bytes end in :class:`FrameError` in a bounded
number of steps. An ``IndexError`` from a read past the end is translated
where it can happen (``try`` blocks cost nothing in CPython 3.11 until they
fire).

Fields follow protobuf's rules: a field with an unexpected wire type is an
unknown field and is skipped; when a scalar field repeats, the last one wins.
"""

from __future__ import annotations

from typing import NamedTuple

from vsmux.wire.errors import FrameError
from vsmux.wire.varint import read_varint, to_signed

__all__ = ["Header", "int32_of", "scan_events", "scan_header", "skip_field"]


class Header(NamedTuple):
    """The VEvent fields the gateway reads, scanned from the encoded bytes.

    A named tuple rather than a frozen dataclass: it is built once per header
    read on the hot path, and a frozen dataclass costs about three times as
    much to construct.
    """

    type: int
    timestamp: int
    current_time: int
    keyspace: str
    shard: str
    gtid: str


_MAX_FIELD_NUMBER = (1 << 29) - 1


def skip_field(buf: bytes, pos: int, end: int) -> int:
    """The position after the field whose key starts at ``buf[pos]``."""
    try:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(buf, pos)
        wire_type = key & 7
        if not 0 < key >> 3 <= _MAX_FIELD_NUMBER:
            raise FrameError(f"field number {key >> 3} is not valid")
        if wire_type == 0:
            while buf[pos] >= 0x80:
                pos += 1
            pos += 1
        elif wire_type == 2:
            length = buf[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = read_varint(buf, pos)
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise FrameError(f"unsupported wire type {wire_type} in field {key >> 3}")
    except IndexError:
        raise FrameError("truncated field") from None
    if pos > end:
        raise FrameError(f"field {key >> 3} runs past the end of the message")
    return pos


def int32_of(value: int) -> int:
    """A decoded varint read as ``int32`` (how protobuf reads enum values)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _text(value: bytes, number: int) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise FrameError(f"VEvent field {number} is not valid UTF-8") from None


def scan_header(raw: bytes) -> Header:
    """The header fields of an encoded VEvent, checking the whole top level.

    A pure-Python reference for :func:`vsmux.wire.header.read_header` (which
    the gateway uses, being faster); tests check that the two agree.
    """
    type_ = timestamp = current_time = 0
    keyspace = shard = gtid = b""
    pos = 0
    end = len(raw)
    while pos < end:
        key = raw[pos]
        if key < 0x80:
            start = pos + 1
        else:
            key, start = read_varint(raw, pos)
        if key == 0x08:
            value, pos = read_varint(raw, start)
            type_ = int32_of(value)
        elif key == 0x10:
            value, pos = read_varint(raw, start)
            timestamp = to_signed(value)
        elif key == 0xA0:  # field 20, current_time
            value, pos = read_varint(raw, start)
            current_time = to_signed(value)
        elif key in _TEXT_KEYS:
            length, start = read_varint(raw, start)
            pos = start + length
            if pos > end:
                raise FrameError(f"VEvent field {key >> 3} runs past the end of the event")
            if key == 0x1A:
                gtid = raw[start:pos]
            elif key == 0xB2:
                keyspace = raw[start:pos]
            else:
                shard = raw[start:pos]
        else:
            pos = skip_field(raw, pos, end)
    return Header(
        type_, timestamp, current_time, _text(keyspace, 22), _text(shard, 23), _text(gtid, 3)
    )


# gtid=3, keyspace=22, shard=23 with wire type 2.
_TEXT_KEYS = frozenset({0x1A, 0xB2, 0xBA})


def scan_events(body: bytes) -> list[bytes]:
    """The encoded events of a VStreamResponse, walked in Python.

    A reference for :func:`vsmux.wire.split_response` (which lets upb do the
    walk, being faster); tests check that the two agree.
    """
    events = []
    pos = 0
    end = len(body)
    while pos < end:
        if body[pos] != 0x0A:
            pos = skip_field(body, pos, end)
            continue
        length, start = read_varint(body, pos + 1)
        pos = start + length
        if pos > end:
            raise FrameError("event runs past the end of the response")
        events.append(body[start:pos])
    return events
