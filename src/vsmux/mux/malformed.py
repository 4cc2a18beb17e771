"""The one error for an event the wire layer cannot read.

A tablet's events reach the gateway as encoded bytes; the streamer groups
them and the sender applies their positions and packs them, each reading a
few header fields. When one of those reads fails (:class:`FrameError`), the
tablet sent something this gateway does not understand: the stream ends with
INTERNAL, naming the tablet, the shard and what could not be read.
"""

from __future__ import annotations

from vsmux.core.positions import ShardKey
from vsmux.errors import Code, VStreamError
from vsmux.wire import FrameError

__all__ = ["malformed_event"]


def malformed_event(
    err: FrameError, tablet: str, key: ShardKey, what: str = "event"
) -> VStreamError:
    """INTERNAL: ``tablet`` sent a malformed ``what`` for shard ``key``."""
    return VStreamError(
        Code.INTERNAL,
        f"tablet {tablet} sent a malformed {what} for {key[0]}/{key[1]}: {err}; "
        "check the tablet's version",
    )
