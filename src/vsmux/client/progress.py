"""Progress figures for ``vsmux tail``: events per second, last position, lag.

:class:`Progress` only counts and renders; the caller supplies both clocks
(a monotonic one for rates, the wall clock for lag against source commit
times), so it is pure and testable without sleeping.
"""

from __future__ import annotations

from vsmux.proto import binlogdata

__all__ = ["Progress", "summarize_position"]


def summarize_position(vgtid: binlogdata.VGtid | None) -> str:
    """A short position: ``shard@<last gtid interval>`` per shard, copy marked."""
    if vgtid is None or not vgtid.shard_gtids:
        return "(none yet)"
    parts = []
    for sg in vgtid.shard_gtids:
        gtid = sg.gtid or "(copy)"
        if ":" in gtid:
            gtid = gtid.rsplit(":", 1)[1]
        copying = f" copying {len(sg.table_p_ks)} table(s)" if sg.table_p_ks else ""
        parts.append(f"{sg.keyspace}/{sg.shard or '*'}@{gtid}{copying}")
    return " ".join(parts)


class Progress:
    """Counters since start, and the rate since the last rendered line."""

    def __init__(self, now: float) -> None:
        self.events = 0
        self.rows = 0
        self.transactions = 0
        self.position: binlogdata.VGtid | None = None
        self.source_time = 0  # seconds; last unit's source timestamp
        self._mark_time = now
        self._mark_events = 0

    def received(self, events: int) -> None:
        self.events += events

    def delivered(
        self, rows: int, position: binlogdata.VGtid | None, timestamp: int, transaction: bool
    ) -> None:
        self.rows += rows
        self.transactions += int(transaction)
        if position is not None:
            self.position = position
        if timestamp:
            self.source_time = timestamp

    def line(self, now: float, wall: float) -> str:
        """One progress line; restarts the rate window."""
        elapsed = now - self._mark_time
        rate = (self.events - self._mark_events) / elapsed if elapsed > 0 else 0.0
        self._mark_time = now
        self._mark_events = self.events
        lag = f"{max(0.0, wall - self.source_time):.1f}s" if self.source_time else "-"
        return (
            f"vsmux tail: {rate:.0f} events/s, {self.rows} rows in {self.transactions} "
            f"transactions, lag {lag}, position {summarize_position(self.position)}"
        )
