"""Admission: VStream calls per connection and streaming connections, within limits."""

from __future__ import annotations

import pytest

from vsmux.core.admission import Admission, LimitExceeded
from vsmux.errors import Code, VStreamError


def test_calls_per_connection_are_limited_and_released() -> None:
    admission = Admission(max_streams_per_connection=2, max_streaming_connections=10)
    admission.admit("a")
    admission.admit("a")
    with pytest.raises(VStreamError) as info:
        admission.admit("a")
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    assert "--max-streams-per-connection" in info.value.message
    admission.admit("b")  # another connection is not affected
    admission.release("a")
    admission.admit("a")
    assert (admission.connections, admission.streams) == (2, 3)


def test_connections_with_calls_are_limited() -> None:
    admission = Admission(max_streams_per_connection=5, max_streaming_connections=2)
    admission.admit("a")
    admission.admit("b")
    admission.admit("b")  # more calls on a counted connection are fine
    with pytest.raises(VStreamError) as info:
        admission.admit("c")
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    assert "--max-streaming-connections" in info.value.message
    admission.release("a")  # a's last call: the connection no longer counts
    admission.admit("c")
    assert (admission.connections, admission.streams) == (2, 3)


def test_streams_per_user_are_limited_and_released() -> None:
    admission = Admission(10, 10, max_streams_per_user=2)
    admission.admit("a", "alice")
    admission.admit("b", "alice")
    with pytest.raises(LimitExceeded) as info:
        admission.admit("c", "alice")
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    assert info.value.limit == "max_streams_per_user"
    assert "user 'alice'" in info.value.message and "--max-streams-per-user" in info.value.message
    admission.admit("c", "bob")  # another user is not affected
    admission.admit("c")  # nor a caller without a name
    admission.release("a", "alice")
    admission.admit("a", "alice")
    assert (admission.user_streams("alice"), admission.streams) == (2, 4)
    assert admission.connections == 3  # a refused call left nothing counted


def test_streams_in_all_are_limited() -> None:
    admission = Admission(10, 10, max_streams=2)
    admission.admit("a", "alice")
    admission.admit("b")
    with pytest.raises(LimitExceeded) as info:
        admission.admit("c", "bob")
    assert info.value.limit == "max_streams"
    assert "--max-streams)" in info.value.message
    admission.release("b")
    admission.admit("c", "bob")
    assert admission.streams == 2
