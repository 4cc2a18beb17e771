"""The liveness error's text and Go-style durations."""

from __future__ import annotations

import pytest

from vsmux.core.liveness import go_duration, hung_error
from vsmux.errors import Code


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (600, "10m0s"),
        (90, "1m30s"),
        (3600, "1h0m0s"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
        (0, "0s"),
        (61.25, "1m1.25s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_hung_error_is_the_quoted_message() -> None:
    err = hung_error(600)
    assert err.code == Code.UNAVAILABLE
    assert err.message == (
        "vstream is fully throttled or otherwise hung: vstream failed liveness checks as "
        "there was no activity, including heartbeats, within the last 10m0s"
    )
