"""The table a ROW or FIELD event is about, read from its bytes.

A shared upstream stream (:mod:`vsmux.core.feed_ring`) must know which tables
an event run describes (FIELD) and touches (ROW) so that a consumer joining
mid-stream gets each table's FIELD before its first row. Only the
``table_name`` at the front of the ``row_event`` (5) or ``field_event`` (6)
sub-message is read; rows are never decoded.
"""

from __future__ import annotations

from vsmux.wire.frames import Frame
from vsmux.wire.rename import FAST_LAYOUT, FIELD, ROW, find_table_name

__all__ = ["table_of"]


def table_of(frame: Frame) -> bytes:
    """The encoded table name of a ROW or FIELD frame (``b""`` if it names none).

    Raises :class:`FrameError` for bytes that are not a well-formed event and
    ``ValueError`` for a frame of another type.
    """
    kind = frame.type
    if kind not in (ROW, FIELD):
        raise ValueError(f"event type {kind} carries no table name")
    raw = frame.raw
    fast = FAST_LAYOUT[kind](raw)
    if fast is not None:
        # The match ends at the name's one-byte length.
        length = raw[fast.end() - 1]
        return raw[fast.end() : fast.end() + length]
    found = find_table_name(kind, raw)
    return b"" if found is None else raw[found.name_start : found.name_end]
