"""Gateway counters and gauges, kept in one registry.

Names follow vtgate's VStream metrics (``docs/vitess.md`` §8), each
labelled by keyspace, shard and tablet type. The registry is plain Python so
``core`` and ``mux`` can update it without an exporter; the server exposes it
to Prometheus through a collector that reads :meth:`Metrics.snapshot`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

__all__ = ["DENIAL_REASONS", "Labels", "Metrics", "Sample"]

#: Why a call was refused, as ``Metrics.denials`` counts it.
DENIAL_REASONS = ("unauthenticated", "permission_denied", "resource_exhausted")

Labels = tuple[str, str, str]  # keyspace, shard, tablet type name

# name -> (kind, help text). Kinds: "counter" only grows, "gauge" goes both ways.
METRICS: dict[str, tuple[str, str]] = {
    "VStreamsCreated": ("counter", "Shard streams started"),
    "VStreamsCount": ("gauge", "Shard streams running now"),
    "VStreamsLag": ("gauge", "Seconds between a shard's last event's commit and send"),
    "VStreamsEventsStreamed": ("counter", "Events sent to clients"),
    "VStreamsEndedWithErrors": ("counter", "Shard streams that ended with an error"),
    "VStreamsTransactionsChunked": ("counter", "Transactions sent in chunks"),
    "VStreamEventsDelayedBySkewAlignment": ("counter", "Waits to reduce skew"),
    # The failover buffer of PRIMARY streams (vsmux.core.failover), per shard.
    "VStreamFailoverBufferStarts": ("counter", "Failovers that started buffering"),
    "VStreamFailoverBufferStopsNewPrimary": (
        "counter",
        "Buffering episodes ended by a new serving primary",
    ),
    "VStreamFailoverBufferStopsMaxFailoverDurationExceeded": (
        "counter",
        "Buffering episodes ended by the maximum failover duration",
    ),
    "VStreamFailoverBufferStopsShutdown": ("counter", "Buffering episodes ended by shutdown"),
    "VStreamFailoverBufferFailoverDurationSumSeconds": (
        "counter",
        "Seconds spent buffering, summed over all episodes",
    ),
    "VStreamFailoverBufferLastFailoverDurationSeconds": (
        "gauge",
        "Seconds the last buffering episode lasted",
    ),
    "VStreamFailoverBufferStreamsBuffered": ("counter", "Streams that waited in the buffer"),
    "VStreamFailoverBufferStreamsBufferedDryRun": (
        "counter",
        "Streams that would have waited in the buffer (dry run)",
    ),
    "VStreamFailoverBufferStreamsWindowExceeded": (
        "counter",
        "Streams that left the buffer at the end of their window",
    ),
    "VStreamFailoverBufferStartsSkippedLastFailoverTooRecent": (
        "counter",
        "Failovers not buffered because the last buffering ended too recently",
    ),
    "VStreamFailoverBufferStartsSkippedLastReparentTooRecent": (
        "counter",
        "Failovers not buffered because a reparent was seen too recently",
    ),
    "VStreamFailoverBufferWaiting": ("gauge", "Streams waiting in the buffer now"),
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of one metric, as :meth:`Metrics.snapshot` read it.

    The server's Prometheus collector turns each sample into an exposition
    line at scrape time. ``kind`` and ``help`` come from :data:`METRICS`;
    ``labels`` is (keyspace, shard, tablet type).
    """

    name: str
    kind: str
    help: str
    labels: Labels
    value: float


class Metrics:
    """Labelled counters and gauges, plus unlabelled gateway-wide values."""

    def __init__(self) -> None:
        self._values: dict[str, defaultdict[Labels, float]] = {
            name: defaultdict(float) for name in METRICS
        }
        # Gateway-wide values (active sessions, bytes sent, bridge depth, ...).
        self.gateway: defaultdict[str, float] = defaultdict(float)
        # Refused calls by (reason, user), and limit hits by (limit, user). The
        # user is an authenticated name or "" (unauthenticated, or no auth), so a
        # client cannot grow these with names of its choosing.
        self.denials: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.limit_hits: defaultdict[tuple[str, str], float] = defaultdict(float)

    def deny(self, reason: str, user: str = "") -> None:
        """Count one refused call (``reason`` from :data:`DENIAL_REASONS`)."""
        self.denials[(reason, user)] += 1

    def hit_limit(self, limit: str, user: str = "") -> None:
        """Count one call refused by ``limit`` (a GatewaySettings field)."""
        self.limit_hits[(limit, user)] += 1
        self.denials[("resource_exhausted", user)] += 1

    def add(self, name: str, labels: Labels, amount: float = 1.0) -> None:
        self._values[name][labels] += amount

    def set(self, name: str, labels: Labels, value: float) -> None:
        self._values[name][labels] = value

    def get(self, name: str, labels: Labels) -> float:
        return self._values[name].get(labels, 0.0)

    def total(self, name: str) -> float:
        """Sum over all label sets (handy in tests and summaries)."""
        return sum(self._values[name].values())

    def snapshot(self) -> list[Sample]:
        out = []
        for name, series in self._values.items():
            kind, help_text = METRICS[name]
            for labels, value in series.items():
                out.append(Sample(name, kind, help_text, labels, value))
        return out
