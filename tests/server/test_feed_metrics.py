"""Prometheus exposition of the feeds (shared upstream streams)."""

from __future__ import annotations

import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from tests.mux.test_feed import KS as FEED_KS
from tests.mux.test_feed import Reader
from tests.mux.test_feed import _request as feed_request
from tests.mux.test_feed import _setup as feed_setup
from tests.mux.test_feed import _source as feed_source
from tests.mux.test_session_e2e import KS, Replay, vstream_request
from tests.server.http_scrape import scrape
from vsmux.core.metrics import Metrics
from vsmux.core.settings import GatewaySettings
from vsmux.mux import FeedStats, Gateway, open_feed_hub, run_vstream
from vsmux.mux.feed_hub import FeedCounters
from vsmux.proto import binlogdata
from vsmux.server.metrics_http import MetricsCollector, render_metrics, serve_metrics
from vsmux.sources._simulated import SimulatedCluster


def _value(text: str, name: str, **labels: str) -> float:
    """The one sample ``name`` with exactly ``labels`` in an exposition."""
    found = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels == labels
    ]
    assert len(found) == 1, f"{name}{labels}: {found} in:\n{text}"
    return float(found[0])


def _current() -> binlogdata.VGtid:
    return binlogdata.VGtid(shard_gtids=[binlogdata.ShardGtid(keyspace=KS, gtid="current")])


async def test_two_sessions_share_feeds_and_the_scrape_shows_them(
    autojump_clock: trio.abc.Clock,
) -> None:
    shards = ["-80", "80-"]
    cluster = SimulatedCluster.build({KS: shards}, seed=3, ddl_probability=0.0)
    settings = GatewaySettings()
    async with open_feed_hub(cluster, cluster.topology, settings) as hub:
        gateway = Gateway(cluster.topology, hub.sources, settings, feeds=hub)
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(run_vstream, vstream_request(_current()), gateway, Replay())
                await trio.testing.wait_all_tasks_blocked()
            await cluster.run_workload(20.0, max_transactions=40)
            await trio.sleep(1.0)
            text = render_metrics(gateway.metrics, hub).decode()
            stats = hub.stats()
            nursery.cancel_scope.cancel()
    assert _value(text, "vsmux_feeds") == len(shards)
    assert _value(text, "vsmux_feed_consumers_min") == 2
    assert _value(text, "vsmux_feed_consumers_max") == 2
    assert _value(text, "vsmux_feed_consumers_avg") == 2
    assert _value(text, "vsmux_feeds_opened_total") == len(shards)
    assert _value(text, "vsmux_feed_joins_total") == len(shards)
    assert _value(text, "vsmux_feed_handovers_total") == 0
    assert _value(text, "vsmux_feed_detaches_total") == 0
    assert _value(text, "vsmux_feed_private_streams_total") == 0
    # Both sessions have read everything: nothing waits for them.
    assert _value(text, "vsmux_feed_wait_seconds_max") == 0
    assert "# TYPE vsmux_feed_joins_total counter" in text
    assert "# TYPE vsmux_feed_consumers gauge" in text
    assert {s.shard for s in stats} == set(shards)
    for s in stats:
        assert s.position.startswith("MySQL56/")
        labels = {"keyspace": KS, "shard": s.shard, "tablet_type": "PRIMARY", "tablet": s.tablet}
        assert _value(text, "vsmux_feed_consumers", **labels) == 2
        assert _value(text, "vsmux_feed_lag_seconds", **labels) == s.lag
        assert _value(text, "vsmux_feed_kept_units", **labels) == s.kept_units > 0
        assert _value(text, "vsmux_feed_kept_bytes", **labels) == s.kept_bytes > 0
        assert _value(text, "vsmux_feed_position_info", **labels, position=s.position) == 1


def _stats(
    shard: str, consumers: int, waits: tuple[float, float, float], **kw: object
) -> FeedStats:
    values: dict[str, object] = {
        "keyspace": KS,
        "shard": shard,
        "tablet_type": "REPLICA",
        "tablet": "zone1-0000000101",
        "consumers": consumers,
        "position": f"MySQL56/u:1-{consumers}",
        "lag": 0.5,
        "wait_min": waits[0],
        "wait_max": waits[1],
        "wait_avg": waits[2],
        "kept_units": 10,
        "kept_bytes": 1000,
        "events": 50,
        "age": 9.0,
    }
    values.update(kw)
    return FeedStats(**values)  # type: ignore[arg-type]


class _Hub:
    """What the collector reads of a hub: stats() and counters."""

    def __init__(self, stats: list[FeedStats]) -> None:
        self._stats = stats
        self.counters = FeedCounters(feeds_opened=5, joins=4, handovers=3, detaches=2)

    def stats(self) -> list[FeedStats]:
        return self._stats


def _render(stats: list[FeedStats]) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(Metrics(), _Hub(stats)))  # type: ignore[arg-type]
    return bytes(generate_latest(registry)).decode()


def test_waits_are_over_every_consumer_and_same_labels_add_up() -> None:
    text = _render(
        [
            _stats("-80", 3, (1.0, 4.0, 2.0)),
            # Another filter on the same tablet: the same labels, added up.
            _stats("-80", 1, (0.5, 0.5, 0.5), lag=2.5),
            _stats("80-", 0, (0.0, 0.0, 0.0), tablet="zone1-0000000201"),  # lingering
        ]
    )
    assert _value(text, "vsmux_feeds") == 3
    assert _value(text, "vsmux_feed_consumers_min") == 0
    assert _value(text, "vsmux_feed_consumers_max") == 3
    assert _value(text, "vsmux_feed_consumers_avg") == 4 / 3
    # A feed without consumers has no waits to count.
    assert _value(text, "vsmux_feed_wait_seconds_min") == 0.5
    assert _value(text, "vsmux_feed_wait_seconds_max") == 4.0
    assert _value(text, "vsmux_feed_wait_seconds_avg") == (3 * 2.0 + 0.5) / 4
    labels = {
        "keyspace": KS,
        "shard": "-80",
        "tablet_type": "REPLICA",
        "tablet": "zone1-0000000101",
    }
    assert _value(text, "vsmux_feed_consumers", **labels) == 4
    assert _value(text, "vsmux_feed_lag_seconds", **labels) == 2.5
    assert _value(text, "vsmux_feed_kept_units", **labels) == 20
    assert _value(text, "vsmux_feed_position_info", **labels, position="MySQL56/u:1-3") == 1
    assert _value(text, "vsmux_feed_position_info", **labels, position="MySQL56/u:1-1") == 1
    assert _value(text, "vsmux_feeds_opened_total") == 5
    assert _value(text, "vsmux_feed_joins_total") == 4
    assert _value(text, "vsmux_feed_handovers_total") == 3
    assert _value(text, "vsmux_feed_detaches_total") == 2
    assert text.count("vsmux_feed_consumers{") == 2  # one series per label set


def test_no_hub_no_feed_families_and_an_idle_hub_exports_zeros() -> None:
    assert "vsmux_feed" not in render_metrics(Metrics()).decode()
    text = _render([])
    for name in (
        "vsmux_feeds",
        "vsmux_feed_consumers_max",
        "vsmux_feed_wait_seconds_avg",
        "vsmux_feed_private_streams_total",
    ):
        assert _value(text, name) == 0


async def test_scrape_over_http_includes_the_hub() -> None:
    cluster = SimulatedCluster.build({KS: ["0"]}, seed=1)
    async with (
        open_feed_hub(cluster, cluster.topology, GatewaySettings()) as hub,
        trio.open_nursery() as nursery,
    ):
        port = await nursery.start(serve_metrics, Metrics(), "127.0.0.1", 0, hub)
        head, body = await scrape(port)
        nursery.cancel_scope.cancel()
    assert head.startswith(b"HTTP/1.0 200 OK")
    assert b"\nvsmux_feeds 0.0\n" in body
    assert b"vsmux_feed_joins_total 0.0" in body


async def test_a_straggler_shows_as_a_wait_then_a_detach_then_a_handover(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A small ring: the crawling reader holds the feed up within a few transactions.
    cluster, directory, settings = feed_setup(share_ring_bytes=4096, share_straggler_seconds=1.0)
    start = cluster.position(FEED_KS, "-80")
    fast = Reader("fast")
    slow = Reader("slow", pause=lambda n: 30.0 if n < 40 else 0.0)
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = feed_source(hub, cluster)
        labels = {
            "keyspace": FEED_KS,
            "shard": "-80",
            "tablet_type": "PRIMARY",
            "tablet": cluster.tablet(FEED_KS, "-80").alias,
        }

        def scrape_now() -> str:
            return render_metrics(Metrics(), hub).decode()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fast.run, source, feed_request(start))
            nursery.start_soon(slow.run, source, feed_request(start))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(
                lambda: cluster.run_workload(50.0, keyspace=FEED_KS, max_transactions=300)
            )
            await trio.sleep(0.5)
            # The slow reader's next transaction waits for it; the fast one's does not.
            text = scrape_now()
            assert _value(text, "vsmux_feed_consumers", **labels) == 2
            assert _value(text, "vsmux_feed_wait_seconds_max") >= 0.3
            assert _value(text, "vsmux_feed_wait_seconds_min") == 0
            assert _value(text, "vsmux_feed_detaches_total") == 0
            with trio.fail_after(30):
                while hub.counters.detaches == 0:  # noqa: ASYNC110 - a counter, polled
                    await trio.sleep(0.1)
            # Let go (it opens a stream of its own when it reads next): the
            # feed has one consumer left.
            text = scrape_now()
            assert _value(text, "vsmux_feed_consumers", **labels) == 1
            assert _value(text, "vsmux_feed_detaches_total") >= 1
            assert _value(text, "vsmux_feed_handovers_total") == 0
            await trio.sleep(1500)  # it crawls through 40, then catches up
            text = scrape_now()
            assert _value(text, "vsmux_feeds") == 1
            assert _value(text, "vsmux_feed_consumers", **labels) == 2
            handovers = _value(text, "vsmux_feed_handovers_total")
            assert handovers >= 1
            assert handovers == _value(text, "vsmux_feed_private_streams_total")
            assert _value(text, "vsmux_feed_joins_total") == 1  # the second reader, at the start
            assert _value(text, "vsmux_feed_wait_seconds_max") == 0
            nursery.cancel_scope.cancel()
