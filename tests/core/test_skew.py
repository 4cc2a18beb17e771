"""Skew tracking: only a stream too far ahead of the slowest waits."""

from __future__ import annotations

from vsmux.core.skew import SkewTracker, event_time


def test_event_time_subtracts_the_source_delay() -> None:
    # Committed at 100 s, the tablet sent it at 103.5 s: 3.5 s old.
    assert event_time(1000.0, 100, 103_500_000_000) == 996.5


def test_single_stream_never_waits() -> None:
    t = SkewTracker(2.0)
    t.update("a", 100.0)
    assert not t.must_wait("a")
    assert not t.must_wait("unknown")


def test_only_streams_more_than_max_ahead_wait() -> None:
    t = SkewTracker(2.0)
    t.update("a", 100.0)
    t.update("b", 102.0)
    t.update("c", 102.5)
    assert t.laggard() == "a"
    assert not t.must_wait("a")
    assert not t.must_wait("b")  # exactly 2 s ahead: fine
    assert t.must_wait("c")
    t.update("a", 101.0)
    assert not t.must_wait("c")


def test_no_stall_with_many_shards() -> None:
    # vtgate's stall: with 3+ shards every non-laggard waited. Here a stream
    # within the window of the slowest keeps going whatever the others do.
    t = SkewTracker(2.0)
    for i in range(16):
        t.update(i, 100.0 + i * 0.1)
    assert [i for i in range(16) if t.must_wait(i)] == []
    t.update(15, 105.0)
    assert [i for i in range(16) if t.must_wait(i)] == [15]


def test_removed_stream_no_longer_holds_others_back() -> None:
    t = SkewTracker(2.0)
    t.update("old", 10.0)
    t.update("new", 50.0)
    assert t.must_wait("new")
    t.remove("old")
    assert not t.must_wait("new")
    assert t.ahead_by("new") == 0.0
