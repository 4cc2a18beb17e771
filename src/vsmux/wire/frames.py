"""Frames: a VEvent kept as its encoded bytes.

The gateway forwards events without decoding row data. A :class:`Frame` holds
the encoded ``binlogdata.VEvent`` and its type; the remaining header fields
(timestamp, current_time, keyspace, shard, gtid) are scanned from the bytes on
first use. Malformed bytes raise :class:`FrameError` and nothing else.

Both ``binlogdata.VStreamResponse`` and ``vtgate.VStreamResponse`` are
``repeated VEvent events = 1``, so a response body is a run of
``0x0a <varint length> <event bytes>`` records; :func:`split_response`,
:func:`encode_response` (and :mod:`vsmux.wire.pack`) convert between that and
frames.

This module is the per-event hot path, so it trades a little elegance for
fewer Python operations per event: splitting is done by protobuf's C parser
with a class whose events are plain ``bytes`` (see :mod:`vsmux.wire.lite`),
lengths below 16 KiB are looked up rather than encoded, and only the type is
read eagerly. When the C loops are built (:mod:`vsmux.wire.accel`), the split
runs there, and this module's Python split takes any response C leaves to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from google.protobuf.message import DecodeError

from vsmux.wire.accel import native
from vsmux.wire.errors import FrameError
from vsmux.wire.header import read_header, read_type
from vsmux.wire.lite import events_class
from vsmux.wire.scan import Header, scan_events
from vsmux.wire.varint import TABLE_LIMIT, VARINT, encode_varint

__all__ = [
    "Frame",
    "FrameError",
    "Header",
    "encode_response",
    "record_size",
    "split_response",
    "split_response_python",
    "type_indexes",
    "type_mask",
]


class Frame:
    """One encoded VEvent and its type (a ``VEventType`` number).

    Frames are immutable by convention: operations such as
    :func:`vsmux.wire.rename_table` return a new frame.
    """

    __slots__ = ("_header", "raw", "type")

    type: int
    raw: bytes
    _header: Header | None

    def __init__(self, type: int, raw: bytes, header: Header | None = None) -> None:
        # ``header``, when given, must be what scanning ``raw`` would give
        # (a rename keeps its event's header).
        self.type = type
        self.raw = raw
        self._header = header

    @classmethod
    def from_bytes(cls, raw: bytes) -> Frame:
        """A frame for encoded VEvent bytes (reads only the type field)."""
        return cls(read_type(raw), raw)

    def header(self) -> Header:
        """All header fields, scanned once and cached.

        Raises :class:`FrameError` if the event's top level is malformed.
        """
        header = self._header
        if header is None:
            header = self._header = read_header(self.raw)
        return header

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"Frame(type={self.type}, {len(self.raw)} bytes)"


# RECORD_PREFIX[n] is the key and length written before an n-byte event
# (shared with vsmux.wire.pack).
RECORD_PREFIX: list[bytes] = [b"\x0a" + v for v in VARINT]


_parse_events = events_class().FromString

# The C split builds Frame objects itself, so it is told the class once.
_split_native: Callable[[bytes], list[Frame] | None] | None = None
_type_indexes_native: Callable[[Sequence[Frame], int], list[int]] | None = None
if native is not None:
    native.bind(Frame)
    _split_native = native.split
    _type_indexes_native = native.type_indexes


def _prefix(n: int) -> bytes:
    return RECORD_PREFIX[n] if n < TABLE_LIMIT else b"\x0a" + encode_varint(n)


def record_size(frame: Frame) -> int:
    """Bytes ``frame`` takes inside an encoded VStreamResponse."""
    return len(_prefix(len(frame.raw))) + len(frame.raw)


def split_response(body: bytes) -> list[Frame]:
    """Frames of an encoded VStreamResponse (either package's), in order.

    Only the response's own structure and each event's type are read here;
    an event's other fields are checked when its header is first read. Other
    fields of the response, if any, are skipped as protobuf skips unknown
    fields. Raises :class:`FrameError` for malformed bytes.
    """
    if _split_native is not None:
        frames = _split_native(body)
        if frames is not None:
            return frames
    return split_response_python(body)


def split_response_python(body: bytes) -> list[Frame]:
    """:func:`split_response` without the C loop (the reference it must match)."""
    try:
        raws = _parse_events(body).events
    except DecodeError:
        # upb only says the bytes are corrupt; the Python walk says where.
        scan_events(body)
        raise FrameError("malformed VStreamResponse") from None
    frames: list[Frame] = []
    append = frames.append
    for raw in raws:
        if len(raw) > 1 and raw[0] == 0x08 and raw[1] < 0x80:
            append(Frame(raw[1], raw))
        else:
            append(Frame(read_type(raw), raw))
    return frames


def type_mask(types: Iterable[int]) -> int:
    """The mask :func:`type_indexes` takes for ``types`` (VEventType numbers below 64)."""
    mask = 0
    for kind in types:
        if not 0 <= kind < 64:
            raise ValueError(f"event type {kind} is outside 0-63")
        mask |= 1 << kind
    return mask


def type_indexes(frames: Sequence[Frame], mask: int) -> list[int]:
    """Indexes of the frames whose type is in ``mask`` (see :func:`type_mask`), in order.

    For loops that act on a few kinds of event and pass the rest along: they
    visit only these indexes instead of every frame.
    """
    if _type_indexes_native is not None:
        return _type_indexes_native(frames, mask)
    return [i for i, frame in enumerate(frames) if 0 <= frame.type < 64 and mask >> frame.type & 1]


def encode_response(frames: Iterable[Frame]) -> bytes:
    """An encoded VStreamResponse holding ``frames`` in order."""
    parts: list[bytes] = []
    append = parts.append
    prefixes = RECORD_PREFIX
    for frame in frames:
        raw = frame.raw
        n = len(raw)
        append(prefixes[n] if n < TABLE_LIMIT else b"\x0a" + encode_varint(n))
        append(raw)
    return b"".join(parts)
