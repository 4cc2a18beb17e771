"""``vsmux demo``: shard layout, the stream summary, and a short real run."""

from __future__ import annotations

import io
import itertools

import pytest
from rich.console import Console

from vsmux.demo.runner import DemoOptions, doubled_shards, even_shards, grpcurl_command, run_demo
from vsmux.demo.state import StreamWatch
from vsmux.demo.view import plain_line, render
from vsmux.proto import binlogdata, query, vtgate
from vsmux.topology import KeyRange


def test_even_shards_cover_the_keyspace() -> None:
    assert even_shards(1) == ["0"]
    assert even_shards(2) == ["-80", "80-"]
    assert even_shards(4) == ["-40", "40-80", "80-c0", "c0-"]
    assert doubled_shards(2) == ["-40", "40-80", "80-c0", "c0-"]
    for n in (3, 5, 16):
        shards = even_shards(n)
        assert len(shards) == n
        ranges = [KeyRange.parse(s) for s in shards]
        assert ranges[0].start == b"" and ranges[-1].end == b""
        assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    with pytest.raises(ValueError):
        even_shards(0)


def test_grpcurl_command_is_the_documented_one() -> None:
    assert grpcurl_command("127.0.0.1:15991") == (
        "grpcurl -plaintext -d "
        '\'{"vgtid":{"shardGtids":[{"keyspace":"commerce","gtid":"current"}]}}\' '
        "127.0.0.1:15991 vtgateservice.Vitess/VStream"
    )


def _event(t: int, **kw: object) -> binlogdata.VEvent:
    return binlogdata.VEvent(type=binlogdata.VEventType(t), keyspace="commerce", shard="-80", **kw)


def test_watch_tracks_positions_rates_and_decoded_rows() -> None:
    watch = StreamWatch(started_at=1000.0)
    fields = [
        query.Field(name="id", type=query.Type.INT64),
        query.Field(name="email", type=query.Type.VARCHAR),
    ]
    row = query.Row(lengths=[2, 5], values=b"42a@b.c")
    vgtid = binlogdata.VGtid(
        shard_gtids=[
            binlogdata.ShardGtid(keyspace="commerce", shard="-80", gtid="MySQL56/u:1-7"),
            binlogdata.ShardGtid(keyspace="commerce", shard="80-", gtid="MySQL56/v:1-3"),
        ]
    )
    response = vtgate.VStreamResponse(
        events=[
            _event(2, timestamp=999),
            _event(
                13,
                field_event=binlogdata.FieldEvent(
                    table_name="commerce.customer", fields=fields, keyspace="commerce", shard="-80"
                ),
            ),
            _event(
                12,
                row_event=binlogdata.RowEvent(
                    table_name="commerce.customer",
                    row_changes=[binlogdata.RowChange(after=row)],
                    keyspace="commerce",
                    shard="-80",
                ),
            ),
            _event(15, vgtid=vgtid),
            _event(3, timestamp=999),
        ]
    )
    watch.feed(response, now=1001.0)
    assert watch.total_events == 5 and watch.total_transactions == 1
    assert watch.shards[("commerce", "-80")].position == "MySQL56/u:1-7"
    assert watch.shards[("commerce", "80-")].position == "MySQL56/v:1-3"
    assert watch.shards[("commerce", "-80")].lag_seconds == 2.0
    line = watch.recent[-1]
    assert (line.op, line.table, line.shard) == ("INSERT", "commerce.customer", "-80")
    assert line.values == "id=42, email='a@b.c'"
    assert watch.rates(1001.0) == (5 / 1.0, 1 / 1.0)
    assert watch.rates(1010.0) == (0.0, 0.0)  # older than the window
    # A later VGTID without 80- (after a reshard) drops it from the view.
    watch.feed(
        vtgate.VStreamResponse(
            events=[_event(15, vgtid=binlogdata.VGtid(shard_gtids=vgtid.shard_gtids[:1]))]
        ),
        now=1002.0,
    )
    assert set(watch.shards) == {("commerce", "-80")}
    assert "events=" in plain_line(watch, 1002.0)
    Console(file=io.StringIO(), width=100).print(render(watch, 1002.0, "header"))


async def test_short_demo_run_shows_a_stream_and_survives_faults() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    options = DemoOptions(
        shards=2,
        rate=100.0,
        duration=2.5,
        port=0,
        live=False,
        fail_tablet_after=0.6,
        reshard_after=1.2,
    )
    assert await run_demo(options, console) == 0
    text = out.getvalue()
    assert "vtgateservice.Vitess/VStream" in text
    assert "failing tablet" in text and "resharding commerce" in text
    last = [line for line in text.splitlines() if line.startswith("[")][-1]
    events = int(last.split("events=")[1].split()[0])
    assert events > 100
    assert "commerce/-40" in last  # the stream moved to the new shards
    assert "stream failed" not in text  # the gateway hid the failure and the reshard
    assert text.rstrip().endswith("demo stopped")
