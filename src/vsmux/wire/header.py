"""Reading a VEvent's header fields with protobuf's C parser (upb).

The header (type, timestamp, gtid, current_time, keyspace, shard) is parsed
with :func:`vsmux.wire.lite.header_class`, which skips the row data as unknown
fields. Measured against the pure-Python walk in :mod:`vsmux.wire.scan` this
is several times faster per event (see BENCHMARKS.md).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from vsmux.wire.errors import FrameError
from vsmux.wire.lite import header_class
from vsmux.wire.scan import Header

__all__ = ["read_header", "read_type"]

_parse = header_class().FromString


def read_header(raw: bytes) -> Header:
    """The header of an encoded VEvent; :class:`FrameError` if it is malformed.

    The whole event's top level is checked (unknown fields by their lengths),
    and string fields must be UTF-8.
    """
    try:
        m = _parse(raw)
    except DecodeError as exc:
        raise FrameError(f"malformed VEvent: {exc}") from None
    return Header(m.type, m.timestamp, m.current_time, m.keyspace, m.shard, m.gtid)


def read_type(raw: bytes) -> int:
    """The ``type`` field (1) of an encoded VEvent; 0 when absent."""
    # Encoders write fields in number order, so the type is usually the first
    # two bytes; anything else takes the full parse.
    if len(raw) >= 2 and raw[0] == 0x08 and raw[1] < 0x80:
        return raw[1]
    return read_header(raw).type
