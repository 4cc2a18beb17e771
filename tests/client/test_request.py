"""Request building, retry policy and progress rendering."""

from __future__ import annotations

import random

import pytest

from tests.client.events import KS, vgtid
from vsmux.client.progress import Progress, summarize_position
from vsmux.client.request import StreamOptions, build_request, start_position
from vsmux.client.retry import Backoff, is_retryable
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, topodata


def test_defaults_stream_every_table_of_every_shard_from_current() -> None:
    options = StreamOptions(keyspace=KS)
    request = build_request(options, start_position(options))
    assert request.tablet_type == topodata.TabletType.PRIMARY
    assert request.vgtid == vgtid(("", "current"))
    assert request.filter == binlogdata.Filter(rules=[binlogdata.Rule(match="/.*")])
    assert request.flags is not None
    assert request.flags.heartbeat_interval == 0 and not request.flags.stop_on_reshard


def test_tables_shard_copy_heartbeat_and_tablet_type() -> None:
    options = StreamOptions(
        keyspace=KS,
        shard="-80",
        tables=("customer", "corder"),
        tablet_type="REPLICA",
        start="copy",
        heartbeat=5,
        stop_on_reshard=True,
    )
    request = build_request(options, start_position(options))
    assert request.vgtid == vgtid(("-80", ""))
    assert request.tablet_type == topodata.TabletType.REPLICA
    assert request.filter is not None
    assert [(r.match, r.filter) for r in request.filter.rules] == [
        ("customer", "select * from `customer`"),
        ("corder", "select * from `corder`"),
    ]
    assert request.flags is not None
    assert request.flags.heartbeat_interval == 5 and request.flags.stop_on_reshard


def test_filter_and_explicit_position() -> None:
    options = StreamOptions(
        keyspace=KS, filter="/cust.*", start='[{"keyspace":"commerce","shard":"-80","gtid":"g"}]'
    )
    request = build_request(options, start_position(options))
    assert request.filter is not None and request.filter.rules[0].match == "/cust.*"
    assert request.vgtid == vgtid(("-80", "g"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (StreamOptions(keyspace=KS, tablet_type="leader"), "unknown tablet type 'leader'"),
        (StreamOptions(keyspace=KS, tables=("a",), filter="/.*"), "either --tables or --filter"),
        (StreamOptions(keyspace=KS, heartbeat=-1), "--heartbeat"),
    ],
)
def test_bad_options(options: StreamOptions, message: str) -> None:
    with pytest.raises(VStreamError, match=message) as info:
        build_request(options, vgtid(("", "current")))
    assert info.value.code == Code.INVALID_ARGUMENT


def test_bad_from() -> None:
    with pytest.raises(VStreamError, match="--from must be 'current', 'copy'"):
        start_position(StreamOptions(keyspace=KS, start="latest"))


def test_only_unavailable_is_retried() -> None:
    assert is_retryable(Code.UNAVAILABLE)
    for code in (Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.INTERNAL, Code.PERMISSION_DENIED):
        assert not is_retryable(code)


def test_backoff_is_jittered_exponential_capped_and_resets() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay < ceiling
    backoff.reset()
    assert backoff.next_delay() < 1.0
    # Same seed, same delays: the jitter is the rng's alone.
    again = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    assert [again.next_delay() for _ in range(6)] == delays


def test_progress_line() -> None:
    progress = Progress(now=10.0)
    progress.received(40)
    progress.delivered(3, vgtid(("-80", "MySQL56/u:1-42"), ("80-", "")), 1000, True)
    line = progress.line(now=12.0, wall=1002.5)
    assert line == (
        "vsmux tail: 20 events/s, 3 rows in 1 transactions, lag 2.5s, "
        "position commerce/-80@1-42 commerce/80-@(copy)"
    )
    assert progress.line(now=13.0, wall=1003.0).startswith("vsmux tail: 0 events/s")
    assert summarize_position(None) == "(none yet)"
