"""The table a ROW or FIELD event is about, read from its bytes.

A shared upstream stream (:mod:`vsmux.core.feed_ring`) must know which tables
an event run describes (FIELD) and touches (ROW) so that a consumer joining
mid-stream gets each table's FIELD before its first row. Only the
``table_name`` at the front of the ``row_event`` (5) or ``field_event`` (6)
sub-message is read; rows are never decoded.
"""

from __future__ import annotations

from vsmux.wire.errors import FrameError
from vsmux.wire.frames import Frame
from vsmux.wire.rename import FAST_LAYOUT, FIELD, ROW
from vsmux.wire.scan import skip_field
from vsmux.wire.varint import read_varint

__all__ = ["table_of"]

_SUB_MESSAGE_KEY = {ROW: 0x2A, FIELD: 0x32}
_TABLE_NAME_KEY = 0x0A


def table_of(frame: Frame) -> bytes:
    """The encoded table name of a ROW or FIELD frame (``b""`` if it names none).

    Raises :class:`FrameError` for bytes that are not a well-formed event and
    ``ValueError`` for a frame of another type.
    """
    kind = frame.type
    want = _SUB_MESSAGE_KEY.get(kind)
    if want is None:
        raise ValueError(f"event type {kind} carries no table name")
    raw = frame.raw
    fast = FAST_LAYOUT[kind](raw)
    if fast is not None:
        # The match ends at the name's one-byte length.
        length = raw[fast.end() - 1]
        return raw[fast.end() : fast.end() + length]
    end = len(raw)
    pos = 0
    while raw[pos : pos + 1] != bytes((want,)):  # bounded: skip_field advances or raises
        if pos >= end:
            return b""
        pos = skip_field(raw, pos, end)
    length, start = read_varint(raw, pos + 1)
    stop = start + length
    if stop > end:
        raise FrameError("table event runs past the end of the event")
    if start < stop and raw[start] == _TABLE_NAME_KEY:
        name_length, name_start = read_varint(raw, start + 1)
        if name_start + name_length > stop:
            raise FrameError("table name runs past the end of the table event")
        return raw[name_start : name_start + name_length]
    return b""
