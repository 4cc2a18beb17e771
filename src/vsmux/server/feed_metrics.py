"""Prometheus families for the gateway's shared upstream streams (feeds).

Read from a :class:`~vsmux.mux.FeedHub` at scrape time, in the Trio thread
(:meth:`~vsmux.mux.FeedHub.stats` reads the Trio clock):

* gateway-wide gauges: ``vsmux_feeds`` (feeds open now), consumers per feed
  (``vsmux_feed_consumers_{min,max,avg}``) and how long consumers' next
  units have waited for them, over every consumer of every feed
  (``vsmux_feed_wait_seconds_{min,max,avg}``); all 0 while no feed is open;
* per feed, labelled keyspace, shard, tablet_type and tablet (bounded by
  ``share_max_feeds``): ``vsmux_feed_consumers``, ``vsmux_feed_lag_seconds``,
  ``vsmux_feed_kept_units``, ``vsmux_feed_kept_bytes`` and
  ``vsmux_feed_position_info`` (value 1, the position as a label). Feeds of
  one tablet that differ only in filter, options or caller share these
  labels and are added up (consumers, kept units and bytes; the highest lag);
* counters since the gateway started: ``vsmux_feeds_opened_total``,
  ``vsmux_feed_joins_total``, ``vsmux_feed_handovers_total``,
  ``vsmux_feed_detaches_total`` and ``vsmux_feed_private_streams_total``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from vsmux.mux import FeedHub, FeedStats
from vsmux.mux.feed_hub import FeedCounters

__all__ = ["families_of", "feed_families"]

FEED_LABELS = ["keyspace", "shard", "tablet_type", "tablet"]

# FeedCounters field -> (prometheus name without _total, help)
_COUNTERS: dict[str, tuple[str, str]] = {
    "feeds_opened": ("vsmux_feeds_opened", "Feeds (shared tablet streams) opened"),
    "joins": ("vsmux_feed_joins", "Shard streams that joined an open feed when they started"),
    "handovers": (
        "vsmux_feed_handovers",
        "Private shard streams handed over to a feed once they caught up with it",
    ),
    "detaches": (
        "vsmux_feed_detaches",
        "Consumers a feed let go to a private stream because they fell behind",
    ),
    "private_streams": (
        "vsmux_feed_private_streams",
        "Private shard streams opened (no feed kept the position, or after a detach)",
    ),
}


@dataclass(slots=True)
class _Series:
    """One label set's per-feed values (several feeds may add up to one)."""

    consumers: int = 0
    lag: float = 0.0
    kept_units: int = 0
    kept_bytes: int = 0


def _gauge(name: str, help_text: str, value: float | None = None, **kw: Any) -> Any:
    return GaugeMetricFamily(name, help_text, value=value, **kw)


def feed_families(hub: FeedHub) -> Iterator[Any]:
    """Every feed family for one scrape of ``hub``; see the module docstring."""
    return families_of(hub.stats(), hub.counters)


def families_of(stats: list[FeedStats], counters: FeedCounters) -> Iterator[Any]:
    """The families for these feeds and counters (what :func:`feed_families` reads)."""
    yield from _totals(stats)
    yield from _per_feed(stats)
    for field_name, (name, help_text) in _COUNTERS.items():
        yield CounterMetricFamily(name, help_text, value=getattr(counters, field_name))


def _totals(stats: list[FeedStats]) -> Iterator[Any]:
    yield _gauge("vsmux_feeds", "Feeds (shared tablet streams) open now", len(stats))
    counts = [s.consumers for s in stats]
    consumers_avg = math.fsum(counts) / len(counts) if counts else 0.0
    for suffix, value in (
        ("min", min(counts, default=0)),
        ("max", max(counts, default=0)),
        ("avg", consumers_avg),
    ):
        yield _gauge(
            f"vsmux_feed_consumers_{suffix}",
            f"Consumers per open feed: the {suffix} over all feeds",
            value,
        )
    served = [s for s in stats if s.consumers]
    total = sum(s.consumers for s in served)
    wait_avg = math.fsum(s.wait_avg * s.consumers for s in served) / total if total else 0.0
    for suffix, value in (
        ("min", min((s.wait_min for s in served), default=0.0)),
        ("max", max((s.wait_max for s in served), default=0.0)),
        ("avg", wait_avg),
    ):
        yield _gauge(
            f"vsmux_feed_wait_seconds_{suffix}",
            f"How long consumers' next units have waited for them: the {suffix} over "
            "every consumer of every feed",
            value,
        )


def _per_feed(stats: list[FeedStats]) -> Iterator[Any]:
    series: dict[tuple[str, str, str, str], _Series] = {}
    positions: set[tuple[str, str, str, str, str]] = set()
    for s in stats:
        labels = (s.keyspace, s.shard, s.tablet_type, s.tablet)
        one = series.setdefault(labels, _Series())
        one.consumers += s.consumers
        one.lag = max(one.lag, s.lag)
        one.kept_units += s.kept_units
        one.kept_bytes += s.kept_bytes
        positions.add((*labels, s.position))
    families = {
        "consumers": _gauge(
            "vsmux_feed_consumers", "Shard streams reading the feed now", labels=FEED_LABELS
        ),
        "lag": _gauge(
            "vsmux_feed_lag_seconds",
            "Seconds between the feed's newest transaction's commit and the tablet sending it",
            labels=FEED_LABELS,
        ),
        "kept_units": _gauge(
            "vsmux_feed_kept_units",
            "Whole transactions the feed keeps for joiners and slower consumers",
            labels=FEED_LABELS,
        ),
        "kept_bytes": _gauge(
            "vsmux_feed_kept_bytes", "Bytes of the units the feed keeps", labels=FEED_LABELS
        ),
    }
    for labels, one in sorted(series.items()):
        for key, family in families.items():
            family.add_metric(list(labels), getattr(one, key))
    yield from families.values()
    info = _gauge(
        "vsmux_feed_position_info",
        "The position of the feed's newest transaction (1 per feed and position)",
        labels=[*FEED_LABELS, "position"],
    )
    for labelled in sorted(positions):
        info.add_metric(list(labelled), 1)
    yield info
