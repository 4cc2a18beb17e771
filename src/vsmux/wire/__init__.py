"""Event frames: VEvents as encoded bytes plus the few header fields the gateway reads.

- :mod:`~vsmux.wire.frames`: :class:`Frame`, splitting and joining responses.
- :mod:`~vsmux.wire.rename`: ``keyspace.table`` names without decoding rows.
- :mod:`~vsmux.wire.pack`: frames into client responses, renaming as they are written.
- :mod:`~vsmux.wire.header`, :mod:`~vsmux.wire.lite`: splitting and header
  reads through protobuf's C parser with cut-down classes.
- :mod:`~vsmux.wire.codec`: frames to and from generated message classes.
- :mod:`~vsmux.wire.upb`: protobuf classes from the same descriptors.
- :mod:`~vsmux.wire.scan`, :mod:`~vsmux.wire.varint`: Python field walks and varints.

Every malformed input ends in :class:`FrameError`.
"""

from vsmux.wire.codec import decode_event, frame_of
from vsmux.wire.errors import FrameError
from vsmux.wire.frames import (
    Frame,
    encode_response,
    record_size,
    split_response,
)
from vsmux.wire.pack import ResponsePacker, pack_responses, rename_table
from vsmux.wire.scan import Header

__all__ = [
    "Frame",
    "FrameError",
    "Header",
    "ResponsePacker",
    "decode_event",
    "encode_response",
    "frame_of",
    "pack_responses",
    "record_size",
    "rename_table",
    "split_response",
]
