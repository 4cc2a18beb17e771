"""Prometheus metrics over HTTP, served from Trio.

A custom collector reads :meth:`vsmux.core.metrics.Metrics.snapshot` at
scrape time (vtgate's VStream metrics labelled keyspace, shard, tablet_type)
plus the gateway-wide values: active sessions, bridge queue depth, responses
and bytes sent, sessions ended and memory releases, and the refused calls:
``vsmux_denials_total{reason,user}`` and ``vsmux_limit_hits_total{limit,user}``.
With a feed hub (shared upstream streams), the feeds' families too
(:mod:`vsmux.server.feed_metrics`).
The HTTP endpoint runs in the Trio thread, so a scrape never reads the registry while a session
changes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from vsmux.core.metrics import METRICS, Metrics
from vsmux.mux import FeedHub
from vsmux.server.etcd_topology import (
    TOPO_BAD_RECORDS,
    TOPO_CELLS_UNAVAILABLE,
    TOPO_CHANGES,
    TOPO_CONNECTED,
    TOPO_LOADS,
)
from vsmux.server.feed_metrics import feed_families
from vsmux.server.memory import MEMORY_RELEASES
from vsmux.transport import SESSIONS_ENDED

__all__ = ["MetricsCollector", "render_metrics", "serve_metrics"]

_LABELS = ["keyspace", "shard", "tablet_type"]

# Metrics.gateway key -> (prometheus name, kind, help)
_GATEWAY_VALUES: dict[str, tuple[str, str, str]] = {
    "active_sessions": ("vsmux_active_sessions", "gauge", "VStream sessions running now"),
    "bridge_queued_batches": (
        "vsmux_bridge_queue_depth",
        "gauge",
        "Response batches waiting between sessions and their clients",
    ),
    "bytes_sent": ("vsmux_bytes_sent", "counter", "VStream response bytes sent to clients"),
    "responses_sent": ("vsmux_responses_sent", "counter", "VStream responses sent to clients"),
    SESSIONS_ENDED: (
        "vsmux_sessions_ended",
        "counter",
        "VStream sessions that have ended, for any reason",
    ),
    MEMORY_RELEASES: (
        "vsmux_memory_releases",
        "counter",
        "Times finished sessions' memory was collected and returned to the operating system",
    ),
    # The etcd topology (vsmux.server.etcd_topology); zero with a topology file.
    TOPO_CONNECTED: (
        "vsmux_topo_server_connected",
        "gauge",
        "1 while the topology server's records are read and watched, 0 while it is away",
    ),
    TOPO_LOADS: (
        "vsmux_topo_server_loads",
        "counter",
        "Times every topology record was read (the first load and one per reconnect)",
    ),
    TOPO_CHANGES: (
        "vsmux_topo_server_changes",
        "counter",
        "Changed topology records received from the topology server's watches",
    ),
    TOPO_BAD_RECORDS: (
        "vsmux_topo_server_bad_records",
        "counter",
        "Topology records refused (logged with their key and skipped)",
    ),
    TOPO_CELLS_UNAVAILABLE: (
        "vsmux_topo_server_cells_unavailable",
        "gauge",
        "Cells of --cells-to-watch whose tablets are not followed now "
        "(no CellInfo, or their etcd does not answer)",
    ),
}

# Longest request head accepted, and how long a scraper may take to send it.
_MAX_REQUEST_BYTES = 8192
_REQUEST_TIMEOUT_SECONDS = 5.0


def _prom_name(vtgate_name: str) -> str:
    """``VStreamsEventsStreamed`` -> ``vsmux_vstreams_events_streamed``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", vtgate_name).lower()
    return f"vsmux_{snake}"


class MetricsCollector:
    """A prometheus-client collector over one gateway's :class:`Metrics` (and feeds)."""

    def __init__(self, metrics: Metrics, feeds: FeedHub | None = None) -> None:
        self._metrics = metrics
        self._feeds = feeds

    def describe(self) -> list[Any]:
        return []  # unchecked registration: families are produced at scrape time

    def collect(self) -> Iterator[Any]:
        families: dict[str, Any] = {}
        for name, (kind, help_text) in METRICS.items():
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            families[name] = family_type(_prom_name(name), help_text, labels=_LABELS)
        for sample in self._metrics.snapshot():
            families[sample.name].add_metric(list(sample.labels), sample.value)
        yield from families.values()
        denials = CounterMetricFamily(
            "vsmux_denials",
            "VStream and Execute calls refused, by reason and authenticated user",
            labels=["reason", "user"],
        )
        for (reason, user), value in sorted(self._metrics.denials.items()):
            denials.add_metric([reason, user], value)
        yield denials
        hits = CounterMetricFamily(
            "vsmux_limit_hits",
            "VStream calls refused by a limit, by limit and authenticated user",
            labels=["limit", "user"],
        )
        for (limit, user), value in sorted(self._metrics.limit_hits.items()):
            hits.add_metric([limit, user], value)
        yield hits
        for key, (prom, kind, help_text) in _GATEWAY_VALUES.items():
            value = self._metrics.gateway.get(key, 0.0)
            if kind == "counter":
                yield CounterMetricFamily(prom, help_text, value=value)
            else:
                yield GaugeMetricFamily(prom, help_text, value=value)
        if self._feeds is not None:
            yield from feed_families(self._feeds)


def render_metrics(metrics: Metrics, feeds: FeedHub | None = None) -> bytes:
    """The Prometheus text exposition of ``metrics`` and, if given, the hub's feeds.

    With ``feeds`` it must be called in the hub's Trio run (it reads the Trio clock).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(metrics, feeds))
    data: bytes = generate_latest(registry)
    return data


async def _handle(stream: trio.SocketStream, metrics: Metrics, feeds: FeedHub | None) -> None:
    async with stream:
        head = b""
        with trio.move_on_after(_REQUEST_TIMEOUT_SECONDS):
            while b"\r\n\r\n" not in head and len(head) < _MAX_REQUEST_BYTES:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                head += chunk
        parts = head.split(b" ", 2)
        path = parts[1].split(b"?")[0] if len(parts) > 1 else b""
        if path in (b"/metrics", b"/"):
            status, body = b"200 OK", render_metrics(metrics, feeds)
            content_type = b"text/plain; version=0.0.4; charset=utf-8"
        else:
            status, body, content_type = b"404 Not Found", b"try /metrics\n", b"text/plain"
        response = (
            b"HTTP/1.0 "
            + status
            + b"\r\nContent-Type: "
            + content_type
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        try:
            await stream.send_all(response)
        except trio.BrokenResourceError:
            pass  # the scraper went away; nothing to do


async def serve_metrics(
    metrics: Metrics,
    host: str,
    port: int,
    feeds: FeedHub | None = None,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` on ``host:port`` until cancelled; reports the bound port.

    ``feeds``: the gateway's feed hub, whose feeds every scrape includes.
    Cancellation closes the listeners and any scrape being answered.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = int(listeners[0].socket.getsockname()[1])

    async def handler(stream: trio.SocketStream) -> None:
        await _handle(stream, metrics, feeds)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(bound)
