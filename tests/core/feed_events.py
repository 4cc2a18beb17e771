"""Small encoded events for feed tests: transactions, FIELDs and heartbeats."""

from __future__ import annotations

from vsmux.proto import binlogdata, query
from vsmux.wire import Frame

T = binlogdata.VEventType
UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"


def position(n: int) -> str:
    return f"MySQL56/{UUID}:1-{n}"


def event(kind: T, **fields: object) -> Frame:
    return Frame.from_bytes(bytes(binlogdata.VEvent(type=kind, **fields)))  # type: ignore[arg-type]


def field_event(table: str, *columns: str) -> Frame:
    return event(
        T.FIELD,
        field_event=binlogdata.FieldEvent(
            table_name=table, fields=[query.Field(name=c) for c in columns or ("id",)]
        ),
    )


def row(table: str, value: bytes = b"1") -> Frame:
    change = binlogdata.RowChange(after=query.Row(lengths=[len(value)], values=value))
    return event(T.ROW, row_event=binlogdata.RowEvent(table_name=table, row_changes=[change]))


def transaction(n: int, *body: Frame, timestamp: int = 100, current_time: int = 0) -> list[Frame]:
    """BEGIN, body..., GTID (position n), COMMIT."""
    return [
        event(T.BEGIN),
        *body,
        event(T.GTID, gtid=position(n), timestamp=timestamp, current_time=current_time),
        event(T.COMMIT),
    ]


def heartbeat() -> Frame:
    return event(T.HEARTBEAT)


def types(frames: list[Frame]) -> list[T]:
    return [T(f.type) for f in frames]
