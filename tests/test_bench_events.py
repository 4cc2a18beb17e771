"""Benchmark harness checks: the replay tablet's hand-encoded events are what the
generated classes would encode; profile summaries and /proc sampling are right."""

from __future__ import annotations

import itertools
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _events import (
    BEGIN,
    COMMIT,
    ROWS_PER_TX,
    ShardEvents,
    count_events,
)
from replay_tablet import shard_names, topology_toml

from vsmux.proto import binlogdata
from vsmux.topology import KeyRange
from vsmux.wire.frames import split_response

TS = 1_763_700_000
CT = TS * 10**9 + 123_456_789


def test_transaction_matches_generated_encoding() -> None:
    events = ShardEvents("bench", "40-80", seed=7)
    rows = events.rows_block(TS, CT)
    body, n = events.transaction(TS, CT, rows, with_field=True)

    decoded = binlogdata.VStreamResponse.parse(body).events
    assert n == len(decoded) == ROWS_PER_TX + 4
    types = [e.type for e in decoded]
    assert types[:2] == [binlogdata.VEventType.BEGIN, binlogdata.VEventType.FIELD]
    assert types[2:-2] == [binlogdata.VEventType.ROW] * ROWS_PER_TX
    assert types[-2:] == [binlogdata.VEventType.GTID, binlogdata.VEventType.COMMIT]
    assert decoded[-2].gtid == f"MySQL56/{events.server_uuid}:1-1"
    for event, frame in zip(decoded, split_response(body), strict=True):
        assert (event.timestamp, event.current_time) == (TS, CT)
        assert (event.keyspace, event.shard) == ("bench", "40-80")
        # Byte-identical to a re-encode by the generated classes.
        assert bytes(event) == frame.raw
    assert all(len(f.raw) == 300 for f in split_response(rows))


def test_flood_fast_path_equals_one_by_one() -> None:
    a = ShardEvents("bench", "-80")
    b = ShardEvents("bench", "-80")
    rows = a.rows_block(TS, CT)
    fast = a.transactions(TS, CT, rows, 5)
    slow = b"".join(b.transaction(TS, CT, rows)[0] for _ in range(5))
    assert fast == slow
    assert a.position() == b.position() == f"MySQL56/{a.server_uuid}:1-5"


@pytest.mark.parametrize("etype", [BEGIN, COMMIT])
def test_count_events_agrees_with_split(etype: int) -> None:
    events = ShardEvents("bench", "0")
    body = events.transactions(TS, CT, events.rows_block(TS, CT, rows=3), 4)
    assert count_events(body) == len(split_response(body)) == 4 * 6
    assert count_events(b"") == 0
    assert events.simple(etype, TS, CT) == bytes(
        binlogdata.VEvent(
            type=binlogdata.VEventType(etype),
            timestamp=TS,
            current_time=CT,
            keyspace="bench",
            shard="0",
        )
    )


@pytest.mark.parametrize("k", [1, 4, 16, 64])
def test_shards_cover_the_keyspace_and_topology_lists_them(k: int) -> None:
    shards = shard_names(k)
    assert len(shards) == k
    ranges = [KeyRange.parse(s) for s in shards]
    assert ranges[0].start == b"" and ranges[-1].end == b""
    for left, right in itertools.pairwise(ranges):
        assert left.end == right.start
    data = tomllib.loads(topology_toml(shards, list(range(20000, 20000 + k))))
    assert data["keyspaces"]["bench"]["shards"] == shards
    assert [t["address"] for t in data["tablets"]][-1] == f"127.0.0.1:{20000 + k - 1}"


def test_profile_summary_counts_own_and_inclusive_time() -> None:
    from _profile import summarize

    raw = (
        "process 1:main;run (a/loop.py:10);work (b/wire.py:5) 3\n"
        "process 1:main;run (a/loop.py:10);work (b/wire.py:7);send (c/io.py:1) 1\n"
        "not a stack line\n"
    )
    text = summarize(raw)
    assert text.startswith("4 samples")
    own, inclusive = text.split("inclusive time:")
    assert "75.0%  work (wire.py)" in own  # both lines of `work` aggregate
    assert "25.0%  send (io.py)" in own
    assert "100.0%  run (loop.py)" in inclusive


def test_profile_summary_sums_own_time_by_layer() -> None:
    from _profile import summarize

    raw = (
        "process 1:main;run (trio/_core/_run.py:1);split_response (vsmux/wire/frames.py:5) 2\n"
        "process 1:main;run (trio/_core/_run.py:1);receive_data (h2/connection.py:9) 1\n"
        "process 1:main;run (trio/_core/_run.py:1) 1\n"
    )
    layers = summarize(raw).split("own time by layer:")[1].split("inclusive time:")[0]
    assert "50.0%  vsmux wire" in layers
    assert "25.0%  grpclib + h2" in layers
    assert "25.0%  trio scheduler" in layers


def test_proc_sample_reads_this_process() -> None:
    import os

    from _harness import median_of, proc_sample

    sample = proc_sample(os.getpid())
    assert sample.cpu_seconds > 0
    assert 0 < sample.rss_bytes <= sample.hwm_bytes
    assert median_of([{"x": 3}, {"x": 1}, {"x": None}, {"x": 2}], "x") == 2
