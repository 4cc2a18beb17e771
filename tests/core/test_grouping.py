"""Transaction grouping: terminators, renames, heartbeats, journals, chunks."""

from __future__ import annotations

import pytest

from vsmux.core.grouping import TransactionGrouper, UnitKind
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata
from vsmux.wire import Frame, frame_of

T = binlogdata.VEventType


def ev(kind: binlogdata.VEventType, **kw: object) -> Frame:
    return frame_of(binlogdata.VEvent(type=kind, **kw))  # type: ignore[arg-type]


def row(table: str = "t1", payload: bytes = b"x") -> Frame:
    return ev(
        T.ROW,
        row_event=binlogdata.RowEvent(
            table_name=table,
            row_changes=[binlogdata.RowChange(after=_row(payload))],
        ),
    )


def _row(payload: bytes) -> object:
    from vsmux.proto import query

    return query.Row(lengths=[len(payload)], values=payload)


def types(frames: list[Frame]) -> list[int]:
    return [f.type for f in frames]


@pytest.mark.parametrize("terminator", [T.COMMIT, T.DDL, T.OTHER, T.ROLLBACK])
def test_terminators_end_a_unit(terminator: binlogdata.VEventType) -> None:
    g = TransactionGrouper()
    assert g.feed([ev(T.BEGIN), row()]) == []
    units = g.feed([row(), ev(terminator), ev(T.BEGIN)])
    assert len(units) == 1
    assert types(units[0].frames) == [T.BEGIN, T.ROW, T.ROW, terminator]
    assert units[0].final and units[0].kind == UnitKind.TRANSACTION
    assert g.buffered_bytes == len(ev(T.BEGIN).raw)


def test_several_transactions_in_one_batch_come_out_separately() -> None:
    g = TransactionGrouper()
    batch = [ev(T.GTID, gtid="a"), ev(T.COMMIT), ev(T.GTID, gtid="b"), ev(T.DDL)]
    units = g.feed(batch)
    assert [types(u.frames) for u in units] == [[T.GTID, T.COMMIT], [T.GTID, T.DDL]]
    assert [u.controls for u in units] == [[0], [0]]
    assert [u.size for u in units] == [
        len(batch[0].raw) + len(batch[1].raw),
        len(batch[2].raw) + len(batch[3].raw),
    ]


def test_events_pass_through_unchanged() -> None:
    g = TransactionGrouper()
    original = row("orders")
    (unit,) = g.feed([ev(T.BEGIN), original, ev(T.COMMIT)])
    assert unit.frames[1] is original


def test_heartbeats_are_dropped_but_remembered() -> None:
    g = TransactionGrouper()
    hb = ev(T.HEARTBEAT, timestamp=5, current_time=6_000_000_000)
    assert g.feed([hb, hb]) == []
    assert g.heartbeat is not None and g.heartbeat.header().timestamp == 5
    assert g.buffered_bytes == 0
    units = g.feed([ev(T.BEGIN), hb, ev(T.COMMIT)])
    assert types(units[0].frames) == [T.BEGIN, T.COMMIT]
    assert g.feed([]) == [] and g.heartbeat is None


def test_copy_completed_flushes_a_unit_of_its_own_kind() -> None:
    g = TransactionGrouper()
    lastpk = ev(T.LASTPK, last_p_k_event=binlogdata.LastPkEvent(completed=True))
    units = g.feed([ev(T.BEGIN), row(), lastpk, ev(T.COMMIT), ev(T.COPY_COMPLETED)])
    assert [u.kind for u in units] == [UnitKind.TRANSACTION, UnitKind.COPY_COMPLETED]
    assert units[0].controls == [2]
    assert units[1].controls == [0]


def _journal(
    mtype: binlogdata.MigrationType = binlogdata.MigrationType.SHARDS, timestamp: int = 0
) -> Frame:
    return ev(
        T.JOURNAL,
        timestamp=timestamp,
        journal=binlogdata.Journal(
            id=7,
            migration_type=mtype,
            participants=[binlogdata.KeyspaceShard(keyspace="ks", shard="-80")],
        ),
    )


def test_tables_journal_is_ignored() -> None:
    g = TransactionGrouper()
    units = g.feed([ev(T.BEGIN), _journal(binlogdata.MigrationType.TABLES), ev(T.COMMIT)])
    assert types(units[0].frames) == [T.BEGIN, T.COMMIT]
    assert not g.finished


def test_journal_of_another_stream_is_ignored() -> None:
    g = TransactionGrouper(concerns_stream=lambda j: False)
    units = g.feed([ev(T.BEGIN), _journal(), ev(T.COMMIT)])
    assert types(units[0].frames) == [T.BEGIN, T.COMMIT]


def test_journal_ends_the_stream_and_drops_what_follows() -> None:
    g = TransactionGrouper()
    units = g.feed([ev(T.BEGIN), _journal(), ev(T.COMMIT), ev(T.BEGIN)])
    (unit,) = units
    assert unit.kind == UnitKind.JOURNAL and unit.frames == []
    assert unit.journal is not None and unit.journal.id == 7
    assert g.finished
    with pytest.raises(RuntimeError):
        g.feed([])


@pytest.mark.parametrize("forward", [False, True])
def test_a_journal_unit_says_when_the_tablet_wrote_the_journal(forward: bool) -> None:
    g = TransactionGrouper(forward_journals=forward)
    (unit,) = g.feed([ev(T.BEGIN), _journal(timestamp=1_700_000_123), ev(T.COMMIT)])
    assert unit.kind == UnitKind.JOURNAL and unit.written_at == 1_700_000_123


def test_forwarded_journal_carries_the_buffered_events() -> None:
    g = TransactionGrouper(forward_journals=True)
    (unit,) = g.feed([ev(T.BEGIN), _journal()])
    assert types(unit.frames) == [T.BEGIN, T.JOURNAL]


def test_forwarded_journal_is_its_whole_transaction() -> None:
    g = TransactionGrouper(forward_journals=True)
    first = [ev(T.BEGIN), ev(T.ROW), ev(T.GTID), ev(T.COMMIT)]
    units = g.feed([*first, ev(T.BEGIN), _journal(), ev(T.GTID), ev(T.COMMIT), ev(T.BEGIN)])
    assert [u.kind for u in units] == [UnitKind.TRANSACTION, UnitKind.JOURNAL]
    journal = units[1]
    assert types(journal.frames) == [T.BEGIN, T.JOURNAL, T.GTID, T.COMMIT]
    # Its GTID becomes the VGTID before the COMMIT, like any transaction's.
    assert journal.controls == [2]
    assert g.finished


def test_partial_journal_error_propagates() -> None:
    def partial(journal: binlogdata.Journal) -> bool:
        raise VStreamError(Code.INTERNAL, "partial")

    g = TransactionGrouper(concerns_stream=partial)
    with pytest.raises(VStreamError):
        g.feed([_journal()])


def test_chunking_emits_pieces_until_the_terminator() -> None:
    g = TransactionGrouper(chunk_size=100)
    big = row(payload=b"y" * 60)
    assert g.feed([ev(T.BEGIN), big]) == []  # under the threshold: buffered
    (piece,) = g.feed([big])
    assert not piece.final and types(piece.frames) == [T.BEGIN, T.ROW, T.ROW]
    assert g.in_chunked_transaction and g.buffered_bytes == 0
    (piece2,) = g.feed([row()])  # once chunking, every batch is a piece
    assert not piece2.final and types(piece2.frames) == [T.ROW]
    units = g.feed([ev(T.GTID, gtid="g"), ev(T.COMMIT), ev(T.BEGIN)])
    assert [u.final for u in units] == [True]
    assert units[0].controls == [0]
    assert not g.in_chunked_transaction
    assert g.buffered_bytes == len(ev(T.BEGIN).raw)


def test_chunking_bounds_the_buffer_for_a_huge_transaction() -> None:
    g = TransactionGrouper(chunk_size=10_000)
    r = row(payload=b"z" * 300)
    peak = 0
    pieces = 0
    g.feed([ev(T.BEGIN)])
    for _ in range(2_000):  # ~700 KB transaction in 20-row batches
        pieces += len(g.feed([r] * 20))
        peak = max(peak, g.buffered_bytes)
    assert peak <= 10_000
    assert pieces > 50
    (last,) = g.feed([ev(T.COMMIT)])
    assert last.final
