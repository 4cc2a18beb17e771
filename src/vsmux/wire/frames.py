"""Frames: a VEvent kept as its encoded bytes.

The gateway forwards events without decoding row data. A :class:`Frame` holds
the encoded ``binlogdata.VEvent`` and its type; the remaining header fields
(timestamp, current_time, keyspace, shard, gtid) are scanned from the bytes on
first use. Malformed bytes raise :class:`FrameError` and nothing else.

Both ``binlogdata.VStreamResponse`` and ``vtgate.VStreamResponse`` are
``repeated VEvent events = 1``, so a response body is a run of
``0x0a <varint length> <event bytes>`` records; :func:`split_response` and
:func:`encode_response` convert between that and frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Frame", "FrameError", "Header", "encode_response", "split_response"]


class FrameError(ValueError):
    """Bytes that are not a well-formed VEvent / VStreamResponse."""


@dataclass(frozen=True, slots=True)
class Header:
    """The VEvent fields the gateway reads, scanned from the encoded bytes."""

    type: int
    timestamp: int
    current_time: int
    keyspace: str
    shard: str
    gtid: str


class Frame:
    """One encoded VEvent and its type (a ``VEventType`` number)."""

    __slots__ = ("_header", "raw", "type")

    def __init__(self, type: int, raw: bytes) -> None:
        self.type = type
        self.raw = raw
        self._header: Header | None = None

    @classmethod
    def from_bytes(cls, raw: bytes) -> Frame:
        """A frame for encoded VEvent bytes (reads the type field)."""
        return cls(_read_type(raw), raw)

    def header(self) -> Header:
        """All header fields, scanned once and cached."""
        if self._header is None:
            self._header = _scan_header(self.raw)
        return self._header

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"Frame(type={self.type}, {len(self.raw)} bytes)"


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise FrameError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FrameError("varint longer than 10 bytes")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_type(raw: bytes) -> int:
    # Encoders write field 1 first; fall back to a full scan otherwise.
    if len(raw) >= 2 and raw[0] == 0x08 and raw[1] < 0x80:
        return raw[1]
    return _scan_header(raw).type


def _scan_header(raw: bytes) -> Header:
    fields: dict[int, int | bytes] = {}
    pos = 0
    end = len(raw)
    while pos < end:
        key, pos = _read_varint(raw, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(raw, pos)
            fields[number] = value
        elif wire_type == 2:
            length, pos = _read_varint(raw, pos)
            if pos + length > end:
                raise FrameError("length-delimited field runs past the end of the event")
            fields[number] = raw[pos : pos + length]
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise FrameError(f"unsupported wire type {wire_type} in field {number}")
    if pos != end:
        raise FrameError("field runs past the end of the event")

    def num(n: int) -> int:
        v = fields.get(n, 0)
        if not isinstance(v, int):
            raise FrameError(f"field {n} has the wrong wire type")
        return v - (1 << 64) if v >= 1 << 63 else v

    def text(n: int) -> str:
        v = fields.get(n, b"")
        if not isinstance(v, bytes):
            raise FrameError(f"field {n} has the wrong wire type")
        try:
            return v.decode()
        except UnicodeDecodeError as exc:
            raise FrameError(f"field {n} is not valid UTF-8") from exc

    return Header(num(1), num(2), num(20), text(22), text(23), text(3))


def split_response(body: bytes) -> list[Frame]:
    """Frames of an encoded VStreamResponse (either package's)."""
    frames = []
    pos = 0
    end = len(body)
    while pos < end:
        key, pos = _read_varint(body, pos)
        if key != 0x0A:
            raise FrameError(f"unexpected field key {key} in a VStreamResponse")
        length, pos = _read_varint(body, pos)
        if pos + length > end:
            raise FrameError("event runs past the end of the response")
        frames.append(Frame.from_bytes(body[pos : pos + length]))
        pos += length
    return frames


def encode_response(frames: Iterable[Frame]) -> bytes:
    """An encoded VStreamResponse holding ``frames`` in order."""
    parts = []
    for frame in frames:
        parts.append(b"\x0a")
        parts.append(_encode_varint(len(frame.raw)))
        parts.append(frame.raw)
    return b"".join(parts)
