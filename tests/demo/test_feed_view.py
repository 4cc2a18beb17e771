"""The demo shows the gateway's feeds: each shard's shared tablet stream and its consumers."""

from __future__ import annotations

import io

from rich.console import Console

from vsmux.cli.main import main
from vsmux.demo.feed_view import FeedWatch, feeds_line, feeds_table
from vsmux.demo.runner import DemoOptions, run_demo
from vsmux.demo.state import RECENT_CHANGES, RowLine, StreamWatch
from vsmux.demo.view import render
from vsmux.mux import FeedStats
from vsmux.mux.feed_hub import FeedCounters


def _feed(shard: str, tablet: str, consumers: int) -> FeedStats:
    return FeedStats(
        keyspace="commerce",
        shard=shard,
        tablet_type="PRIMARY",
        tablet=tablet,
        consumers=consumers,
        position="MySQL56/u:1-40",
        lag=0.3,
        wait_min=0.0,
        wait_max=1.5,
        wait_avg=0.5,
        kept_units=40,
        kept_bytes=12_288,
        events=300,
        age=12.0,
    )


def _watch() -> FeedWatch:
    watch = FeedWatch(clients=2)
    counters = FeedCounters(feeds_opened=2, joins=3, handovers=1, detaches=1, private_streams=1)
    watch.update(
        [_feed("80-", "zone1-0000000101", 2), _feed("-80", "zone1-0000000100", 1)], counters
    )
    counters.joins = 99  # the watch keeps a copy: the hub's counters move on
    return watch


def _text(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=140)
    console.print(renderable)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def test_feeds_line_has_totals_and_each_feed_in_shard_order() -> None:
    watch = _watch()
    assert watch.consumers == 3
    assert feeds_line(watch) == (
        "  feeds=2 clients=2 consumers=3 joins=3 handovers=1 detaches=1 private=1"
        " | commerce/-80@zone1-0000000100 consumers=1 lag=0.3s kept=40"
        " | commerce/80-@zone1-0000000101 consumers=2 lag=0.3s kept=40"
    )
    assert feeds_line(FeedWatch()) == (
        "  feeds=0 clients=1 consumers=0 joins=0 handovers=0 detaches=0 private=0"
    )


def test_live_screen_has_a_feeds_table() -> None:
    text = _text(feeds_table(_watch()))
    assert "feeds: 2 shared tablet streams for 2 clients (3 consumers)" in text
    assert "3 joins, 1 hand-overs, 1 detaches, 1 private" in text
    row = next(line for line in text.splitlines() if "commerce/80-" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    tablet = "zone1-0000000101 (primary)"
    assert cells == ["commerce/80-", tablet, "2", "0.3", "1.5", "40", "12", "300", "12"]
    screen = _text(render(StreamWatch(started_at=0.0), 5.0, "header", _watch()))
    assert "shared tablet streams" in screen and "commerce/-80" in screen
    assert "shared tablet streams" not in _text(render(StreamWatch(started_at=0.0), 5.0, "h"))


def test_feed_rows_come_out_of_the_recent_changes() -> None:
    watch = StreamWatch(started_at=0.0)
    for n in range(RECENT_CHANGES):
        watch.recent.append(RowLine(1.0, "INSERT", "commerce.customer", "-80", f"id={n}"))
    assert _text(render(watch, 5.0, "h")).count("commerce.customer") == RECENT_CHANGES
    screen = _text(render(watch, 5.0, "h", _watch()))
    assert screen.count("commerce.customer") == RECENT_CHANGES - 2
    assert f"id={RECENT_CHANGES - 1}" in screen  # the newest first
    many = FeedWatch()
    many.update([_feed(f"{n:02x}", "zone1-1", 1) for n in range(20)], FeedCounters())
    assert _text(render(watch, 5.0, "h", many)).count("commerce.customer") == 4


async def test_demo_clients_share_one_feed_per_shard() -> None:
    out = io.StringIO()
    options = DemoOptions(shards=2, rate=100.0, duration=2.0, port=0, live=False)
    assert await run_demo(options, Console(file=out, width=400)) == 0
    lines = out.getvalue().splitlines()
    last = [line for line in lines if line.startswith("  feeds=")][-1]
    assert last.startswith("  feeds=2 clients=2 consumers=4 joins=2 handovers=0 detaches=0")
    feeds = last.split(" | ")[1:]
    assert [f.split("@")[0] for f in feeds] == ["commerce/-80", "commerce/80-"]
    assert all(" consumers=2 " in f for f in feeds)
    assert lines[-1] == "demo stopped"


async def test_live_demo_shows_the_feeds_table() -> None:
    out = io.StringIO()
    options = DemoOptions(shards=1, rate=50.0, duration=1.5, port=0, live=True, clients=3)
    assert await run_demo(options, Console(file=out, width=160)) == 0
    text = out.getvalue()
    assert "feeds: 1 shared tablet streams for 3 clients (3 consumers)" in text
    assert "  feeds=1 clients=3 consumers=3 joins=2" in text


def test_clients_option_is_checked() -> None:
    assert main(["demo", "--clients", "0"]) == 2
