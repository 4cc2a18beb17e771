"""Event frames: VEvents as encoded bytes plus the few header fields the gateway reads."""

from vsmux.wire.frames import (
    Frame,
    FrameError,
    Header,
    encode_response,
    split_response,
)

__all__ = ["Frame", "FrameError", "Header", "encode_response", "split_response"]
