"""The demo's view of the gateway's feeds (shared tablet streams). Pure and synchronous.

:class:`FeedWatch` keeps the latest :meth:`~vsmux.mux.FeedHub.stats` and
counters the runner copied into it (the runner reads the hub in Trio, a few
times a second); :func:`feeds_table` draws them for the live screen and
:func:`feeds_line` writes them as one line for ``--plain``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from rich.table import Table

from vsmux.mux import FeedStats
from vsmux.mux.feed_hub import FeedCounters

__all__ = ["FeedWatch", "feeds_line", "feeds_table"]


@dataclass(slots=True)
class FeedWatch:
    """The gateway's feeds as last seen, and how many demo clients read the stream."""

    clients: int = 1
    feeds: list[FeedStats] = field(default_factory=list)
    counters: FeedCounters = field(default_factory=FeedCounters)

    def update(self, stats: list[FeedStats], counters: FeedCounters) -> None:
        """Keep ``stats`` (sorted by shard) and a copy of ``counters``."""
        self.feeds = sorted(stats, key=lambda s: (s.keyspace, s.shard, s.tablet_type, s.tablet))
        self.counters = copy.copy(counters)

    @property
    def consumers(self) -> int:
        return sum(s.consumers for s in self.feeds)


def _totals(watch: FeedWatch) -> str:
    c = watch.counters
    return (
        f"joins={c.joins} handovers={c.handovers} detaches={c.detaches} private={c.private_streams}"
    )


def feeds_table(watch: FeedWatch) -> Table:
    """One row per feed: shard, tablet, consumers, lag, longest wait, what it keeps."""
    c = watch.counters
    title = (
        f"feeds: {len(watch.feeds)} shared tablet streams for {watch.clients} clients "
        f"({watch.consumers} consumers); {c.feeds_opened} opened, {c.joins} joins, "
        f"{c.handovers} hand-overs, {c.detaches} detaches, {c.private_streams} private"
    )
    table = Table(expand=True, title=title, title_justify="left")
    table.add_column("keyspace/shard", style="bold", no_wrap=True)
    table.add_column("tablet", no_wrap=True, overflow="ellipsis")
    table.add_column("consumers", justify="right")
    table.add_column("lag s", justify="right")
    table.add_column("max wait s", justify="right")
    table.add_column("kept units", justify="right")
    table.add_column("kept KiB", justify="right")
    table.add_column("events", justify="right")
    table.add_column("age s", justify="right")
    for s in watch.feeds:
        table.add_row(
            f"{s.keyspace}/{s.shard}",
            f"{s.tablet} ({s.tablet_type.lower()})",
            str(s.consumers),
            f"{s.lag:.1f}",
            f"{s.wait_max:.1f}",
            f"{s.kept_units:,}",
            f"{s.kept_bytes / 1024:,.0f}",
            f"{s.events:,}",
            f"{s.age:,.0f}",
        )
    return table


def feeds_line(watch: FeedWatch) -> str:
    """The feeds as one line: totals, then ``keyspace/shard@tablet`` with its numbers."""
    parts = [
        f"  feeds={len(watch.feeds)} clients={watch.clients} consumers={watch.consumers} "
        + _totals(watch)
    ]
    parts.extend(
        f"{s.keyspace}/{s.shard}@{s.tablet} consumers={s.consumers} lag={s.lag:.1f}s "
        f"kept={s.kept_units}"
        for s in watch.feeds
    )
    return " | ".join(parts)
