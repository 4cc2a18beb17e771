"""The new-streams-per-second token bucket."""

from __future__ import annotations

import pytest

from vsmux.core.admission import LimitExceeded
from vsmux.core.ratelimit import TokenBucket
from vsmux.errors import Code


def test_a_seconds_burst_then_the_rate() -> None:
    bucket = TokenBucket(2.0, now=100.0)
    bucket.take(100.0)
    bucket.take(100.0)
    with pytest.raises(LimitExceeded) as info:
        bucket.take(100.0)
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    assert info.value.limit == "max_new_streams_per_second"
    assert "--max-new-streams-per-second" in info.value.message
    assert "retry in 0.50s" in info.value.message
    bucket.take(100.5)  # half a second: one token back
    with pytest.raises(LimitExceeded):
        bucket.take(100.5)
    bucket.take(110.0)
    bucket.take(110.0)  # refilled only up to the burst
    with pytest.raises(LimitExceeded):
        bucket.take(110.0)


def test_slow_rates_keep_a_burst_of_one() -> None:
    bucket = TokenBucket(0.1, now=0.0)
    bucket.take(0.0)
    with pytest.raises(LimitExceeded):
        bucket.take(9.0)
    bucket.take(10.0)


def test_time_going_back_gives_nothing() -> None:
    bucket = TokenBucket(1.0, now=5.0)
    bucket.take(5.0)
    with pytest.raises(LimitExceeded):
        bucket.take(4.0)
    with pytest.raises(LimitExceeded):
        bucket.take(5.5)
    bucket.take(6.0)
