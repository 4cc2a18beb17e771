"""Test helpers: read a simulated tablet's stream back into rows and transactions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vsmux.proto import binlogdata
from vsmux.sources._simulated.rows import decode_row
from vsmux.wire.frames import Frame

T = binlogdata.VEventType
Key = tuple[bytes, ...]


def request(
    position: str,
    *rules: tuple[str, str] | str,
    keyspace: str = "commerce",
    shard: str = "-80",
    last_pks: list[binlogdata.TableLastPk] | None = None,
) -> binlogdata.VStreamRequest:
    from vsmux.proto import query

    built = [
        binlogdata.Rule(match=r) if isinstance(r, str) else binlogdata.Rule(match=r[0], filter=r[1])
        for r in rules
    ] or [binlogdata.Rule(match="/.*")]
    return binlogdata.VStreamRequest(
        target=query.Target(keyspace=keyspace, shard=shard),
        position=position,
        filter=binlogdata.Filter(rules=built),
        table_last_p_ks=last_pks or [],
    )


def events(batch: list[Frame]) -> list[binlogdata.VEvent]:
    return [binlogdata.VEvent.parse(f.raw) for f in batch]


@dataclass
class Replay:
    """Applies a shard stream to in-memory tables, checking event order."""

    pk_columns: dict[str, list[str]] = field(
        default_factory=lambda: {
            "customer": ["customer_id"],
            "corder": ["order_id"],
            "product": ["sku"],
        }
    )
    tables: dict[str, dict[Key, dict[str, bytes | None]]] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)
    position: str = ""
    gtids: list[str] = field(default_factory=list)
    transactions: list[list[binlogdata.VEvent]] = field(default_factory=list)
    last_pks: dict[str, binlogdata.TableLastPk] = field(default_factory=dict)
    journals: list[binlogdata.Journal] = field(default_factory=list)
    copy_completed: int = 0
    heartbeats: int = 0
    in_tx: bool = False
    strict: bool = True  # check before images and inserts against the tables
    _current: list[binlogdata.VEvent] = field(default_factory=list)

    def apply(self, batch: list[Frame], stop: Callable[[], bool] | None = None) -> bool:
        """Apply ``batch``; with ``stop``, stop after the first event outside a
        transaction where it holds (a client saving its position there) and
        return True."""
        for frame in batch:
            event = binlogdata.VEvent.parse(frame.raw)
            assert event.type == frame.type
            assert event.keyspace and event.shard
            assert event.current_time > 0
            self.apply_event(event)
            if stop is not None and not self.in_tx and stop():
                return True
        return False

    def apply_event(self, event: binlogdata.VEvent) -> None:
        kind = event.type
        if kind == T.BEGIN:
            assert not self.in_tx, "BEGIN inside a transaction"
            self.in_tx = True
            self._current = [event]
            return
        if kind == T.HEARTBEAT:
            assert not self.in_tx
            self.heartbeats += 1
            return
        if kind in (T.DDL, T.OTHER):
            assert not self.in_tx
            self.transactions.append([event])
            return
        if kind == T.COPY_COMPLETED:
            assert not self.in_tx
            self.copy_completed += 1
            return
        if kind == T.GTID:
            self.position = event.gtid
            self.gtids.append(event.gtid)
        if self.in_tx:
            self._current.append(event)
        if kind == T.COMMIT:
            assert self.in_tx
            self.in_tx = False
            self.transactions.append(self._current)
        elif kind == T.FIELD:
            assert self.in_tx
            fe = event.field_event
            assert fe is not None
            self.columns[fe.table_name] = [f.name for f in fe.fields]
            self.tables.setdefault(fe.table_name, {})
        elif kind == T.ROW:
            assert self.in_tx
            re_ = event.row_event
            assert re_ is not None
            names = self.columns[re_.table_name]  # FIELD must come first
            rows = self.tables[re_.table_name]
            pk = self.pk_columns[re_.table_name]
            for change in re_.row_changes:
                if change.before is not None:
                    before = dict(zip(names, decode_row(change.before), strict=True))
                    key = tuple(before[c] or b"" for c in pk)
                    if self.strict:
                        assert rows.get(key) == before, f"before image mismatch for {key}"
                    rows.pop(key, None)
                if change.after is not None:
                    after = dict(zip(names, decode_row(change.after), strict=True))
                    key = tuple(after[c] or b"" for c in pk)
                    if self.strict and change.before is None:
                        assert key not in rows, f"duplicate insert of {key}"
                    rows[key] = after
        elif kind == T.LASTPK:
            lp = event.last_p_k_event
            assert lp is not None and lp.table_last_p_k is not None
            name = lp.table_last_p_k.table_name
            if lp.completed:
                self.last_pks.pop(name, None)
            else:
                self.last_pks[name] = lp.table_last_p_k
        elif kind == T.JOURNAL:
            assert event.journal is not None
            self.journals.append(event.journal)


def merge(*replays: Replay) -> dict[str, dict[Key, dict[str, bytes | None]]]:
    out: dict[str, dict[Key, dict[str, bytes | None]]] = {}
    for replay in replays:
        for table, rows in replay.tables.items():
            target = out.setdefault(table, {})
            for key, row in rows.items():
                assert key not in target, f"{table} {key} on two shards"
                target[key] = row
    return out
