"""What the demo view shows, fed from VStream responses. Pure and synchronous.

:class:`StreamWatch` takes each decoded ``vtgate.VStreamResponse`` the demo
client receives and keeps: every shard's position (from VGTID events), events
and transactions per second over a short window, per-shard lag (wall clock
minus the commit timestamp of the shard's last event), and the most recent
row changes decoded with the FIELD metadata seen so far.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from vsmux.client.rows import RowDecodeError, SchemaCache, bare_table_name
from vsmux.proto import binlogdata, vtgate

__all__ = ["RATE_WINDOW_SECONDS", "RECENT_CHANGES", "RowLine", "ShardView", "StreamWatch"]

# Rates are averaged over this many seconds: long enough to be steady,
# short enough that a pause shows at once.
RATE_WINDOW_SECONDS = 5.0
# Row changes kept for the "recent changes" panel.
RECENT_CHANGES = 12
# Notes (reshard, failures, reconnects) kept for the log panel.
RECENT_NOTES = 6

_T = binlogdata.VEventType


@dataclass(slots=True)
class ShardView:
    """One row of the demo's shard table: what the client has seen of one shard.

    :class:`StreamWatch` keeps one per shard of the stream, updating it from
    each response: ``position`` is the shard's gtid from the latest VGTID,
    ``lag_seconds`` the wall clock minus the commit time of its last event
    that had one (None until then), ``last_event_at`` when its last event
    arrived.
    """

    keyspace: str
    shard: str
    position: str = ""
    events: int = 0
    transactions: int = 0
    lag_seconds: float | None = None
    last_event_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RowLine:
    """One decoded row change, ready for the demo's "recent changes" panel.

    ``op`` is INSERT, UPDATE or DELETE; ``table`` is ``keyspace.table``;
    ``values`` the first few columns as short text. ``at`` is the wall-clock
    time the response holding it arrived.
    """

    at: float
    op: str
    table: str
    shard: str
    values: str


@dataclass(slots=True)
class StreamWatch:
    """Running totals and recent history of one merged stream."""

    started_at: float
    shards: dict[tuple[str, str], ShardView] = field(default_factory=dict)
    total_events: int = 0
    total_transactions: int = 0
    responses: int = 0
    recent: deque[RowLine] = field(default_factory=lambda: deque(maxlen=RECENT_CHANGES))
    notes: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_NOTES))
    _schema: SchemaCache = field(default_factory=SchemaCache)
    _event_times: deque[tuple[float, int, int]] = field(default_factory=deque)

    def note(self, now: float, text: str) -> None:
        elapsed = now - self.started_at
        self.notes.append(f"[{elapsed:6.1f}s] {text}")

    def restart(self) -> None:
        """A new stream began: FIELD metadata must be learned again."""
        self._schema.clear()

    def feed(self, response: vtgate.VStreamResponse, now: float) -> None:
        """Account for one response received at wall-clock ``now`` (seconds)."""
        self.responses += 1
        commits = 0
        for event in response.events:
            shard = self._shard_of(event)
            if shard is not None:
                shard.events += 1
                shard.last_event_at = now
                if event.timestamp:
                    shard.lag_seconds = max(0.0, now - event.timestamp)
            if event.type == _T.VGTID and event.vgtid is not None:
                # A VGTID names every shard of the stream: shards that left
                # it (after a reshard) leave the view too.
                self.forget_shards_not_in(event.vgtid)
                for sg in event.vgtid.shard_gtids:
                    self._view(sg.keyspace, sg.shard).position = sg.gtid
            elif event.type == _T.COMMIT:
                commits += 1
                if shard is not None:
                    shard.transactions += 1
            elif event.type == _T.FIELD and event.field_event is not None:
                self._schema.learn(event.field_event, event.keyspace, event.shard)
            elif event.type == _T.ROW and event.row_event is not None:
                self._rows(event, now)
            elif event.type == _T.DDL:
                self._schema.forget_shard(event.keyspace, event.shard)
                self.note(now, f"DDL on {event.keyspace}/{event.shard}: {event.statement[:60]}")
            elif event.type == _T.JOURNAL and event.journal is not None:
                parts = ", ".join(f"{p.keyspace}/{p.shard}" for p in event.journal.participants)
                self.note(now, f"reshard journal from {parts}")
        self.total_events += len(response.events)
        self.total_transactions += commits
        self._event_times.append((now, len(response.events), commits))
        self._trim(now)

    def forget_shards_not_in(self, positions: binlogdata.VGtid) -> None:
        """Drop shards that left the stream (after a reshard)."""
        keep = {(sg.keyspace, sg.shard) for sg in positions.shard_gtids}
        for key in [k for k in self.shards if k not in keep]:
            del self.shards[key]

    def rates(self, now: float) -> tuple[float, float]:
        """(events/s, transactions/s) over the last RATE_WINDOW_SECONDS."""
        self._trim(now)
        span = min(RATE_WINDOW_SECONDS, max(now - self.started_at, 1e-9))
        events = sum(e for _, e, _ in self._event_times)
        commits = sum(c for _, _, c in self._event_times)
        return events / span, commits / span

    def _trim(self, now: float) -> None:
        while self._event_times and self._event_times[0][0] < now - RATE_WINDOW_SECONDS:
            self._event_times.popleft()

    def _view(self, keyspace: str, shard: str) -> ShardView:
        key = (keyspace, shard)
        view = self.shards.get(key)
        if view is None:
            view = self.shards[key] = ShardView(keyspace, shard)
        return view

    def _shard_of(self, event: binlogdata.VEvent) -> ShardView | None:
        if not event.keyspace or not event.shard:
            return None
        return self._view(event.keyspace, event.shard)

    def _rows(self, event: binlogdata.VEvent, now: float) -> None:
        row_event = event.row_event
        assert row_event is not None
        try:
            keyspace, shard, table, records = self._schema.changes(
                row_event, event.keyspace, event.shard
            )
        except RowDecodeError as exc:
            self.note(now, f"could not decode a row: {exc}")
            return
        for record in records:
            shown = ", ".join(f"{k}={_short(v)}" for k, v in list(record.data.items())[:4])
            name = f"{keyspace}.{bare_table_name(table, keyspace)}"
            self.recent.append(RowLine(now, record.op.upper(), name, shard, shown))


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 18 else text[:15] + "..."
