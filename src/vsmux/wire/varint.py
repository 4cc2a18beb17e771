"""Protobuf base-128 varints, with lookup tables for the lengths the hot path writes.

Events are a few hundred bytes, so almost every length the gateway encodes is
below 16 KiB (one or two varint bytes). Precomputing those encodings turns a
Python loop per event into one list index.
"""

from __future__ import annotations

from vsmux.wire.errors import FrameError

__all__ = [
    "TABLE_LIMIT",
    "VARINT",
    "encode_varint",
    "read_varint",
    "to_signed",
]

_MASK64 = (1 << 64) - 1

# Lengths below this have a precomputed encoding in VARINT. 2**14 is the first
# length that needs three bytes; the tables cost about 0.6 MB.
TABLE_LIMIT = 1 << 14


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``buf[pos:]`` and the position after it.

    At most ten bytes are read (a 64-bit value); like protobuf, bits above 64
    are dropped.
    """
    try:
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
        result = b & 0x7F
        shift = 7
        pos += 1
        while shift < 70:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return (result & _MASK64 if shift >= 63 else result), pos
            shift += 7
    except IndexError:
        raise FrameError("truncated varint") from None
    raise FrameError("varint longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    """The varint encoding of a 64-bit ``value`` (negative ones as two's complement)."""
    if 0 <= value < TABLE_LIMIT:
        return VARINT[value]
    return _encode_slow(value & _MASK64)


def to_signed(value: int) -> int:
    """A decoded 64-bit varint read as ``int64`` (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _encode_slow(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


VARINT: list[bytes] = [_encode_slow(n) for n in range(TABLE_LIMIT)]
"""``VARINT[n]`` is the encoding of ``n`` for ``0 <= n < TABLE_LIMIT``."""
