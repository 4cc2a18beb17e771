"""Unit assembly: transactions across responses, positions, schema lifecycle."""

from __future__ import annotations

import pytest

from tests.client.events import (
    KS,
    E,
    copy_block,
    field_event,
    fields,
    row_event,
    simple,
    transaction,
    vgtid,
    vgtid_event,
)
from vsmux.client.assembler import Assembler, UnitKind, copying_shards
from vsmux.client.rows import RowDecodeError
from vsmux.proto import binlogdata, query

T = query.Type


def test_transaction_split_over_feeds_completes_at_commit() -> None:
    asm = Assembler()
    events = transaction(1, rows=3, with_field=True)
    assert asm.feed(events[:3]) == []
    assert asm.pending
    [unit] = asm.feed(events[3:])
    assert unit.kind is UnitKind.TRANSACTION
    assert [r.record.data["id"] for r in unit.rows] == [100, 101, 102]
    assert unit.position == vgtid(("-80", "MySQL56/u:1-1"))
    assert unit.timestamp == 1_700_000_000
    assert (unit.keyspace, unit.shard) == (KS, "-80")
    assert unit.events == events
    assert not asm.pending


def test_position_is_latest_vgtid_and_carries_over_units() -> None:
    start = vgtid(("-80", "current"))
    asm = Assembler(start)
    [hb] = asm.feed([simple(E.HEARTBEAT, "")])
    assert hb.kind is UnitKind.HEARTBEAT and hb.position is start
    first = vgtid_event("-80", ("-80", "MySQL56/u:1-5"))
    [other] = asm.feed([first, simple(E.OTHER)])
    assert other.kind is UnitKind.OTHER and other.position is first.vgtid
    [ddl] = asm.feed([simple(E.DDL)])
    assert ddl.position is first.vgtid


def test_heartbeat_inside_a_transaction_does_not_split_it() -> None:
    asm = Assembler()
    events = transaction(2, with_field=True)
    units = asm.feed([*events[:2], simple(E.HEARTBEAT, ""), *events[2:]])
    assert [u.kind for u in units] == [UnitKind.TRANSACTION]
    assert len(units[0].rows) == 1


@pytest.mark.parametrize(
    ("type_", "kind"),
    [
        (E.ROLLBACK, UnitKind.ROLLBACK),
        (E.DDL, UnitKind.DDL),
        (E.OTHER, UnitKind.OTHER),
        (E.COPY_COMPLETED, UnitKind.COPY_COMPLETED),
        (E.JOURNAL, UnitKind.JOURNAL),
    ],
)
def test_standalone_terminators(type_: binlogdata.VEventType, kind: UnitKind) -> None:
    [unit] = Assembler().feed([simple(type_)])
    assert unit.kind is kind and unit.rows == []


def test_ddl_keeps_schemas_and_a_new_field_replaces_the_changed_table() -> None:
    asm = Assembler()
    asm.feed([field_event(shard="-80"), field_event(table="corder", shard="-80")])
    asm.feed([simple(E.DDL, "-80")])
    # The untouched table is still known (servers do not resend its FIELD).
    [ok] = asm.feed([simple(E.BEGIN), row_event(after=[b"1", b"a"]), simple(E.COMMIT)])
    assert ok.rows[0].record.data == {"id": 1, "email": "a"}
    # The altered table comes with a fresh FIELD that replaces the old one.
    wider = fields(("id", T.INT64), ("email", T.VARCHAR), ("note", T.TEXT))
    [changed] = asm.feed(
        [
            simple(E.BEGIN),
            field_event(table="corder", cols=wider),
            row_event(table="corder", after=[b"2", b"b", b"n"]),
            simple(E.COMMIT),
        ]
    )
    assert changed.rows[0].record.data == {"id": 2, "email": "b", "note": "n"}
    # A ROW that does not fit its table's columns fails loudly, saying why.
    with pytest.raises(RowDecodeError, match=r"commerce\.customer on shard commerce/-80") as info:
        asm.feed([simple(E.BEGIN), row_event(after=[b"1", b"a", b"x"])])
    assert "a DDL ran on this shard and no new FIELD" in str(info.value)
    assert asm.schema.is_stale(KS, "-80", "customer")
    assert not asm.schema.is_stale(KS, "-80", "corder")


def test_row_for_a_table_never_described_fails() -> None:
    asm = Assembler()
    asm.feed([field_event(shard="80-")])
    with pytest.raises(RowDecodeError, match=r"before any FIELD event"):
        asm.feed([simple(E.BEGIN), row_event(shard="-80", after=[b"1", b"a"])])


def test_restart_drops_partial_unit_and_schema() -> None:
    asm = Assembler()
    events = transaction(3, rows=2, with_field=True)
    asm.feed(events[:3])
    position = vgtid(("-80", "MySQL56/u:1-2"))
    asm.restart(position)
    assert not asm.pending and asm.position is position and len(asm.schema) == 0
    [unit] = asm.feed(events)
    assert len(unit.rows) == 2


def test_copy_rows_are_snapshot_until_the_shard_completes() -> None:
    start = binlogdata.VGtid(
        shard_gtids=[
            binlogdata.ShardGtid(keyspace=KS, shard="-80", gtid=""),
            binlogdata.ShardGtid(
                keyspace=KS,
                shard="80-",
                gtid="MySQL56/u:1-3",
                table_p_ks=[binlogdata.TableLastPk(table_name="customer")],
            ),
            binlogdata.ShardGtid(keyspace=KS, shard="c0-", gtid="MySQL56/u:1-9"),
        ]
    )
    assert copying_shards(start) == {(KS, "-80"), (KS, "80-")}
    asm = Assembler(start)
    [copied] = asm.feed(transaction(1, with_field=True))
    assert copied.rows[0].snapshot
    asm.feed([simple(E.COPY_COMPLETED, "-80")])
    [live] = asm.feed(transaction(2))
    assert not live.rows[0].snapshot
    [other] = asm.feed(transaction(3, shard="80-", with_field=True))
    assert other.rows[0].snapshot
    asm.feed([simple(E.COPY_COMPLETED, ""), binlogdata.VEvent(type=E.COPY_COMPLETED)])
    [done] = asm.feed(transaction(4, shard="80-"))
    assert not done.rows[0].snapshot


def test_keyspace_wide_copy_start_marks_every_shard() -> None:
    asm = Assembler(vgtid(("", "")))
    [a] = asm.feed(copy_block("-80", "MySQL56/u:1-1", [1], with_field=True))
    [b] = asm.feed(copy_block("80-", "MySQL56/u:1-2", [2], with_field=True))
    assert a.rows[0].snapshot and b.rows[0].snapshot
    asm.feed([simple(E.COPY_COMPLETED, "-80")])
    [c] = asm.feed(transaction(3, shard="-80"))
    [d] = asm.feed(copy_block("80-", "MySQL56/u:1-2", [4]))
    assert not c.rows[0].snapshot and d.rows[0].snapshot


def test_only_copied_rows_are_snapshot_rows_not_the_binlog_catch_up() -> None:
    """During a copy, changes streamed from the binlog (updates, deletes, inserts) are live."""
    asm = Assembler(vgtid(("-80", "")))
    gtid = "MySQL56/u:1-5"
    [first] = asm.feed(copy_block("-80", gtid, [1, 2], with_field=True))
    assert [r.snapshot for r in first.rows] == [True, True]
    # The catch-up between copy batches: a binlog transaction moves the GTID set.
    catch_up = [
        simple(E.BEGIN),
        row_event(before=[b"1", b"k1@x"], after=[b"1", b"new@x"]),
        row_event(before=[b"2", b"k2@x"]),
        row_event(after=[b"3", b"k3@x"]),
        vgtid_event("-80", ("-80", "MySQL56/u:1-6")),
        simple(E.COMMIT),
    ]
    [live] = asm.feed(catch_up)
    assert [r.record.op for r in live.rows] == ["update", "delete", "insert"]
    assert [r.snapshot for r in live.rows] == [False, False, False]
    # The next copy batch continues at the GTID set the catch-up reached.
    [second] = asm.feed(copy_block("-80", "MySQL56/u:1-6", [4, 5]))
    assert [r.snapshot for r in second.rows] == [True, True]
    asm.feed([simple(E.COPY_COMPLETED, "-80")])
    [after] = asm.feed(transaction(7))
    assert not after.rows[0].snapshot
