"""The shard failover buffer: every transition and every stop reason, no event loop."""

from __future__ import annotations

import pytest

from vsmux.core.failover import (
    TRANSITIONS,
    Admission,
    BufferConfig,
    BufferState,
    ShardBuffer,
    SkipReason,
    StopReason,
)
from vsmux.core.metrics import Metrics

LABELS = ("ks", "-80", "PRIMARY")
P = "VStreamFailoverBuffer"


def buffer(**config: object) -> ShardBuffer:
    base = {"window": 10.0, "max_failover_duration": 20.0, "min_time_between_failovers": 60.0}
    base.update(config)
    return ShardBuffer("ks", "-80", BufferConfig(**base), Metrics())  # type: ignore[arg-type]


def count(buf: ShardBuffer, name: str) -> float:
    return buf.metrics.get(P + name, LABELS)


def test_transition_table_is_a_cycle() -> None:
    assert TRANSITIONS[BufferState.IDLE].keys() == {BufferState.BUFFERING}
    assert TRANSITIONS[BufferState.BUFFERING].keys() == {BufferState.DRAINING}
    assert TRANSITIONS[BufferState.DRAINING].keys() == {BufferState.IDLE}


def test_idle_to_buffering_on_a_failover_signature() -> None:
    buf = buffer()
    decision = buf.failover_seen(100.0)
    assert decision.admission is Admission.WAIT
    assert decision.deadline == 110.0  # the window
    assert decision.episode == 1
    assert buf.state is BufferState.BUFFERING
    assert (count(buf, "Starts"), count(buf, "StreamsBuffered"), buf.waiting) == (1, 1, 1)


def test_more_streams_join_the_same_episode_with_their_own_windows() -> None:
    buf = buffer()
    buf.failover_seen(100.0)
    later = buf.failover_seen(115.0)
    assert later.admission is Admission.WAIT
    assert later.deadline == 120.0  # the episode's max duration comes before the window
    assert later.episode == 1
    assert (count(buf, "Starts"), count(buf, "StreamsBuffered"), buf.waiting) == (1, 2, 2)


def test_new_primary_stops_buffering_then_draining_ends_when_the_last_stream_left() -> None:
    buf = buffer()
    first = buf.failover_seen(100.0)
    buf.failover_seen(101.0)
    assert buf.primary_seen("zone1-0000000102", 104.5) is StopReason.NEW_PRIMARY
    assert buf.state is BufferState.DRAINING
    assert count(buf, "StopsNewPrimary") == 1
    assert count(buf, "LastFailoverDurationSeconds") == 4.5
    assert count(buf, "FailoverDurationSumSeconds") == 4.5
    # Draining: a stream seeing the failover's tail now retries at once.
    late = buf.failover_seen(104.6)
    assert late.admission is Admission.RETRY and late.skipped is None
    buf.leave(first.episode, 104.7)
    assert buf.state is BufferState.DRAINING
    buf.leave(first.episode, 104.8)
    assert buf.state is BufferState.IDLE
    assert count(buf, "Waiting") == 0


def test_max_duration_stops_buffering() -> None:
    buf = buffer()
    decision = buf.failover_seen(100.0)
    assert buf.expire(119.9) is None
    assert buf.expire(120.0) is StopReason.MAX_DURATION
    assert buf.state is BufferState.DRAINING
    assert count(buf, "StopsMaxFailoverDurationExceeded") == 1
    assert count(buf, "LastFailoverDurationSeconds") == 20.0
    buf.leave(decision.episode, 120.0)
    assert buf.state is BufferState.IDLE


def test_max_duration_is_noticed_by_any_later_call() -> None:
    buf = buffer(window=100.0)
    buf.failover_seen(100.0)
    # The primary shows up after the maximum: the episode had already ended by then.
    assert buf.primary_seen("zone1-0000000102", 130.0) is StopReason.MAX_DURATION
    assert count(buf, "StopsNewPrimary") == 0
    assert count(buf, "StopsMaxFailoverDurationExceeded") == 1
    assert count(buf, "LastFailoverDurationSeconds") == 20.0  # it ended at the maximum
    assert buf.last_end == 120.0


def test_shutdown_stops_buffering() -> None:
    buf = buffer()
    decision = buf.failover_seen(100.0)
    assert buf.shutdown(103.0) is StopReason.SHUTDOWN
    assert buf.state is BufferState.DRAINING
    assert count(buf, "StopsShutdown") == 1
    buf.leave(decision.episode, 103.0)
    assert buf.state is BufferState.IDLE
    assert buf.shutdown(104.0) is None  # nothing to stop


def test_window_exceeded_is_counted_and_the_episode_goes_on() -> None:
    buf = buffer(window=2.0)
    decision = buf.failover_seen(100.0)
    buf.leave(decision.episode, 102.0, window_exceeded=True)
    assert count(buf, "StreamsWindowExceeded") == 1
    assert buf.state is BufferState.BUFFERING  # no one waits, but the failover is not over
    assert buf.primary_seen("b", 105.0) is StopReason.NEW_PRIMARY
    assert buf.state is BufferState.IDLE  # nobody to drain


def test_a_second_failover_too_soon_after_the_last_is_not_buffered() -> None:
    buf = buffer()
    d = buf.failover_seen(100.0)
    buf.primary_seen("b", 103.0)
    buf.leave(d.episode, 103.0)
    too_soon = buf.failover_seen(162.9)
    assert too_soon.admission is Admission.RETRY
    assert too_soon.skipped is SkipReason.LAST_FAILOVER_TOO_RECENT
    assert count(buf, "StartsSkippedLastFailoverTooRecent") == 1
    assert buf.state is BufferState.IDLE
    later = buf.failover_seen(163.0)
    assert later.admission is Admission.WAIT and later.episode == 2
    assert count(buf, "Starts") == 2


def test_a_reparent_seen_recently_prevents_buffering() -> None:
    # The new primary was seen before any stream noticed the failover: buffering
    # now would wait for a promotion that already happened.
    buf = buffer()
    assert buf.primary_seen("a", 10.0) is None
    assert buf.primary_seen("a", 20.0) is None
    assert buf.last_reparent is None  # the same primary again is no reparent
    assert buf.primary_seen("b", 30.0) is None
    assert buf.last_reparent == 30.0
    decision = buf.failover_seen(40.0)
    assert decision.skipped is SkipReason.LAST_REPARENT_TOO_RECENT
    assert count(buf, "StartsSkippedLastReparentTooRecent") == 1
    assert buf.failover_seen(90.0).admission is Admission.WAIT


def test_dry_run_moves_through_the_states_but_nobody_waits() -> None:
    buf = buffer(dry_run=True)
    decision = buf.failover_seen(100.0)
    assert decision.admission is Admission.RETRY and decision.skipped is None
    assert buf.state is BufferState.BUFFERING
    assert (count(buf, "Starts"), count(buf, "StreamsBufferedDryRun")) == (1, 1)
    assert count(buf, "StreamsBuffered") == 0
    assert buf.primary_seen("b", 102.0) is StopReason.NEW_PRIMARY
    assert buf.state is BufferState.IDLE  # no waiters to drain
    assert count(buf, "StopsNewPrimary") == 1


def test_primary_seen_while_idle_changes_nothing_but_the_record() -> None:
    buf = buffer()
    assert buf.primary_seen("a", 1.0) is None
    assert buf.state is BufferState.IDLE
    assert buf.primary == "a"


def test_leave_after_a_stop_of_an_older_episode_is_not_a_window_exceeded() -> None:
    buf = buffer()
    d = buf.failover_seen(100.0)
    buf.primary_seen("b", 101.0)
    buf.leave(d.episode, 101.0, window_exceeded=True)
    assert count(buf, "StreamsWindowExceeded") == 0
    assert buf.state is BufferState.IDLE


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_has_a_metric(reason: StopReason) -> None:
    from vsmux.core.metrics import METRICS

    assert f"{P}Stops{reason.value}" in METRICS


@pytest.mark.parametrize("reason", list(SkipReason))
def test_every_skip_reason_has_a_metric(reason: SkipReason) -> None:
    from vsmux.core.metrics import METRICS

    assert f"{P}StartsSkipped{reason.value}" in METRICS


def test_an_old_primary_still_claiming_the_role_does_not_end_buffering() -> None:
    buf = buffer()
    buf.primary_seen("a", 10.0, term_start=1000)
    d = buf.failover_seen(100.0)
    # "a" still says PRIMARY, from an older term than one already seen: ignored.
    buf.primary_seen("b", 101.0, term_start=2000)  # promoted; ends this episode
    buf.leave(d.episode, 101.0)
    assert buf.primary == "b"
    assert buf.primary_seen("a", 102.0, term_start=1000) is None
    assert buf.primary == "b"
    assert buf.last_reparent == 101.0


def test_a_report_of_an_older_term_while_buffering_is_ignored() -> None:
    buf = buffer()
    buf.primary_seen("b", 10.0, term_start=2000)
    buf.failover_seen(100.0)
    assert buf.primary_seen("a", 101.0, term_start=1000) is None
    assert buf.state is BufferState.BUFFERING
    assert buf.primary_seen("c", 102.0, term_start=3000) is StopReason.NEW_PRIMARY
