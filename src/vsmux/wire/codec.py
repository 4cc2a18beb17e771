"""Frames to and from generated message classes, for control events and tests.

The hot path never calls these: they decode or encode a whole event.
"""

from __future__ import annotations

from vsmux.proto import binlogdata
from vsmux.wire.errors import FrameError
from vsmux.wire.frames import Frame

__all__ = ["decode_event", "frame_of"]


def frame_of(event: binlogdata.VEvent) -> Frame:
    """A frame holding the encoding of ``event``."""
    return Frame(int(event.type), bytes(event))


def decode_event(frame: Frame) -> binlogdata.VEvent:
    """The full VEvent of ``frame``; :class:`FrameError` if it does not decode."""
    try:
        return binlogdata.VEvent.parse(frame.raw)
    # The decoder reports bad bytes as assorted exception types (ValueError,
    # IndexError, UnicodeDecodeError, ...); all of them mean the same thing here.
    except Exception as exc:
        raise FrameError(f"VEvent does not decode: {exc}") from exc
