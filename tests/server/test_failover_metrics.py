"""The failover buffer's counters reach /metrics as Prometheus series."""

from __future__ import annotations

from vsmux.core.failover import BufferConfig, ShardBuffer
from vsmux.core.metrics import Metrics
from vsmux.server.metrics_http import render_metrics


def test_failover_buffer_metrics_are_exported() -> None:
    metrics = Metrics()
    buffer = ShardBuffer("commerce", "-80", BufferConfig(), metrics)
    decision = buffer.failover_seen(10.0)
    buffer.primary_seen("zone1-0000000102", 12.5)
    buffer.leave(decision.episode, 12.5)
    buffer.failover_seen(13.0)  # too soon after the last one
    text = render_metrics(metrics).decode()
    labels = 'keyspace="commerce",shard="-80",tablet_type="PRIMARY"'
    for line in (
        f"vsmux_vstream_failover_buffer_starts_total{{{labels}}} 1.0",
        f"vsmux_vstream_failover_buffer_stops_new_primary_total{{{labels}}} 1.0",
        f"vsmux_vstream_failover_buffer_streams_buffered_total{{{labels}}} 1.0",
        f"vsmux_vstream_failover_buffer_last_failover_duration_seconds{{{labels}}} 2.5",
        f"vsmux_vstream_failover_buffer_failover_duration_sum_seconds_total{{{labels}}} 2.5",
        "vsmux_vstream_failover_buffer_starts_skipped_last_failover_too_recent_total"
        f"{{{labels}}} 1.0",
    ):
        assert line in text
    assert "# TYPE vsmux_vstream_failover_buffer_stops_shutdown_total counter" in text or (
        "# TYPE vsmux_vstream_failover_buffer_stops_shutdown counter" in text
    )
