"""Prometheus exposition of the gateway metrics."""

from __future__ import annotations

import trio

from tests.server.http_scrape import scrape
from vsmux.core.metrics import Metrics
from vsmux.server.memory import MEMORY_RELEASES
from vsmux.server.metrics_http import render_metrics, serve_metrics
from vsmux.transport import SESSIONS_ENDED


def _metrics() -> Metrics:
    metrics = Metrics()
    metrics.add("VStreamsCreated", ("commerce", "-80", "PRIMARY"), 2)
    metrics.set("VStreamsLag", ("commerce", "80-", "REPLICA"), 1.5)
    metrics.gateway["active_sessions"] = 3
    metrics.gateway["bytes_sent"] = 1234
    metrics.gateway["bridge_queued_batches"] = 1
    metrics.gateway[SESSIONS_ENDED] = 7
    metrics.gateway[MEMORY_RELEASES] = 2
    return metrics


def test_exposition_has_labels_and_gateway_values() -> None:
    text = render_metrics(_metrics()).decode()
    assert (
        'vsmux_vstreams_created_total{keyspace="commerce",shard="-80",tablet_type="PRIMARY"} 2.0'
        in text
    )
    assert 'vsmux_vstreams_lag{keyspace="commerce",shard="80-",tablet_type="REPLICA"} 1.5' in text
    assert "vsmux_active_sessions 3.0" in text
    assert "vsmux_bytes_sent_total 1234.0" in text
    assert "vsmux_bridge_queue_depth 1.0" in text
    assert "# TYPE vsmux_vstreams_events_streamed_total counter" in text


def test_exposition_has_session_ends_and_memory_releases() -> None:
    text = render_metrics(_metrics()).decode()
    assert "# TYPE vsmux_sessions_ended_total counter" in text
    assert "# HELP vsmux_sessions_ended_total VStream sessions that have ended" in text
    assert "vsmux_sessions_ended_total 7.0" in text
    assert "# TYPE vsmux_memory_releases_total counter" in text
    assert "# HELP vsmux_memory_releases_total Times finished sessions' memory" in text
    assert "vsmux_memory_releases_total 2.0" in text


def test_counters_not_yet_counted_are_exported_as_zero() -> None:
    text = render_metrics(Metrics()).decode()
    assert "vsmux_sessions_ended_total 0.0" in text
    assert "vsmux_memory_releases_total 0.0" in text


async def test_scrape_over_http() -> None:
    metrics = _metrics()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_metrics, metrics, "127.0.0.1", 0)
        head, body = await scrape(port)
        nursery.cancel_scope.cancel()
    assert head.startswith(b"HTTP/1.0 200 OK")
    assert b"vsmux_active_sessions 3.0" in body
    assert b"vsmux_sessions_ended_total 7.0" in body
    assert b"vsmux_memory_releases_total 2.0" in body
