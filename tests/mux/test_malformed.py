"""The one error for an event the gateway cannot read."""

from __future__ import annotations

from vsmux.errors import Code
from vsmux.mux.malformed import malformed_event
from vsmux.wire import FrameError


def test_names_the_tablet_the_shard_and_what_was_malformed() -> None:
    err = malformed_event(FrameError("a truncated field"), "zone1-0000000101", ("ks", "-80"))
    assert err.code == Code.INTERNAL
    assert err.message == (
        "tablet zone1-0000000101 sent a malformed event for ks/-80: a truncated field; "
        "check the tablet's version"
    )
    position = malformed_event(
        FrameError("bad"), "zone1-0000000101", ("ks", "-80"), "position event"
    )
    assert "sent a malformed position event for ks/-80: bad" in position.message
