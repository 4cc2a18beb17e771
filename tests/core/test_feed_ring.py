"""The feed ring: cutting batches into whole units, join points, eviction, FIELDs.

A consumer joining at a kept position must read exactly the units after it,
and must get a table's FIELD before its first row even when the feed sent
that FIELD before the consumer joined.
"""

from __future__ import annotations

import pytest

from tests.core.feed_events import T, field_event, heartbeat, position, row, transaction, types
from vsmux.core.feed_reader import FeedReader
from vsmux.core.feed_ring import FeedRing
from vsmux.wire.tables import table_of


def test_units_are_cut_at_terminators_and_kept_with_their_positions() -> None:
    ring = FeedRing(position(1), max_bytes=1 << 20)
    tx2 = transaction(2, field_event("t"), row("t"))
    tx3 = transaction(3, row("t"))
    # A batch ending mid-transaction: the unit waits for its COMMIT.
    assert ring.add(tx2 + tx3[:2], now=1.0) == 1
    assert ring.add(tx3[2:], now=2.0) == 1
    assert (ring.tail, ring.head) == (0, 2)
    assert ring.entry(0).frames == tx2
    assert ring.entry(1).frames == tx3
    assert ring.entry(1).arrived == 2.0
    assert ring.position == position(3)
    assert ring.join_point(position(1)) == 0
    assert ring.join_point(position(2)) == 1
    assert ring.join_point(position(3)) == 2  # the next unit to come
    assert ring.join_point(position(9)) is None


def test_heartbeats_are_counted_not_kept() -> None:
    ring = FeedRing(position(1), max_bytes=1 << 20)
    assert ring.add([heartbeat()], now=0.0) == 0
    assert ring.idle and ring.heartbeats == 1 and len(ring) == 0
    ring.add([heartbeat(), *transaction(2, row("t"))], now=0.0)
    assert not ring.idle and ring.heartbeats == 2
    assert types(ring.entry(0).frames) == [T.BEGIN, T.ROW, T.GTID, T.COMMIT]


def test_current_start_has_no_position_until_the_first_gtid() -> None:
    ring = FeedRing("current", max_bytes=1 << 20)
    assert ring.position is None and ring.join_point("current") is None
    ring.add(transaction(5), now=0.0)
    assert ring.position == position(5) and ring.join_point(position(5)) == 1


def test_eviction_keeps_what_a_consumer_still_needs() -> None:
    ring = FeedRing(position(1), max_bytes=1)  # everything is over the bound
    for n in range(2, 6):
        ring.add(transaction(n, row("t")), now=0.0)
    # A consumer still needs entry 2: only 0 and 1 may go, and the ring stays over.
    assert ring.evict(keep_from=2) is True
    assert ring.tail == 2
    assert ring.join_point(position(1)) is None
    assert ring.join_point(position(2)) is None
    assert ring.join_point(position(3)) == 2
    with pytest.raises(IndexError):
        ring.entry(1)
    assert ring.evict(keep_from=ring.head) is False
    assert len(ring) == 0 and ring.bytes == 0
    assert ring.join_point(position(5)) == 4  # the head stays joinable


def test_a_reader_gets_whole_units_in_order_and_moves_its_position() -> None:
    ring = FeedRing(position(1), max_bytes=1 << 20)
    units = [transaction(n, row("t", bytes([n]))) for n in range(2, 6)]
    for unit in units:
        ring.add(unit, now=0.0)
    reader = FeedReader(ring.join_point(position(3)) or 0, position(3), {}, 0)
    got = reader.read(ring, max_bytes=1 << 20)
    assert got == units[2] + units[3]
    assert reader.position == position(5) and reader.cursor == ring.head
    assert reader.read(ring, max_bytes=1 << 20) == []


def test_a_small_read_bound_still_returns_whole_units() -> None:
    ring = FeedRing(position(1), max_bytes=1 << 20)
    for n in range(2, 5):
        ring.add(transaction(n, row("t")), now=0.0)
    reader = FeedReader(0, position(1), {}, 0)
    assert reader.read(ring, max_bytes=1) == ring.entry(0).frames
    assert reader.position == position(2)


def test_a_caught_up_reader_passes_the_latest_heartbeat_on_once() -> None:
    ring = FeedRing(position(1), max_bytes=1 << 20)
    reader = FeedReader(0, position(1), {}, ring.heartbeats)
    ring.add([heartbeat()], now=0.0)
    ring.add([heartbeat()], now=0.0)
    assert types(reader.read(ring, 1 << 20)) == [T.HEARTBEAT]
    assert reader.read(ring, 1 << 20) == []


def test_a_joiner_gets_the_fields_it_missed_before_each_tables_first_row() -> None:
    ring = FeedRing(position(1), max_bytes=1 << 20)
    fields_a = field_event("a", "id", "name")
    fields_b = field_event("b")
    ring.add(transaction(2, fields_a, row("a"), fields_b, row("b")), now=0.0)
    ring.add(transaction(3, row("b")), now=0.0)
    ring.add(transaction(4, row("a"), row("a")), now=0.0)
    seq = ring.join_point(position(2))
    assert seq == 1
    reader = FeedReader(seq, position(2), ring.fields_at(seq), 0)
    got = reader.read(ring, 1 << 20)
    assert types(got) == [
        T.BEGIN, T.FIELD, T.ROW, T.GTID, T.COMMIT,
        T.BEGIN, T.FIELD, T.ROW, T.ROW, T.GTID, T.COMMIT,
    ]  # fmt: skip
    assert got[1] is fields_b and got[6] is fields_a
    # Later units come as they are.
    ring.add(transaction(5, row("a"), row("b")), now=0.0)
    assert types(reader.read(ring, 1 << 20)) == [T.BEGIN, T.ROW, T.ROW, T.GTID, T.COMMIT]


def test_a_schema_change_in_the_stream_replaces_the_missing_field() -> None:
    ring = FeedRing(position(1), max_bytes=1 << 20)
    ring.add(transaction(2, field_event("a", "id"), row("a")), now=0.0)
    ring.add(transaction(3, row("b")), now=0.0)
    new_fields = field_event("a", "id", "added")
    ring.add(transaction(4, new_fields, row("a")), now=0.0)
    reader = FeedReader(1, position(2), ring.fields_at(1), 0)
    got = reader.read(ring, 1 << 20)
    fields = [f for f in got if f.type == T.FIELD]
    assert fields == [new_fields]
    assert ring.fields[b"a"] is new_fields
    assert ring.entry(2).fields_before[b"a"] is not new_fields


def test_table_of_reads_row_and_field_names() -> None:
    assert table_of(row("customer")) == b"customer"
    assert table_of(field_event("x" * 300)) == b"x" * 300
    with pytest.raises(ValueError):
        table_of(heartbeat())


def test_units_no_one_could_join_at_go_even_under_the_byte_bound() -> None:
    ring = FeedRing(position(1), max_bytes=1 << 20)
    for n in range(2, 12):
        ring.add(transaction(n, row("t")), now=float(n))
    assert ring.evict(ring.head, max_units=4) is False
    assert len(ring) == 4 and ring.tail == 6
    # By age: entries that arrived before t=9 go.
    assert ring.evict(ring.head, arrived_before=9.0) is False
    assert ring.tail == 7 and ring.entry(7).arrived == 9.0
    # What an attached consumer still needs stays, however old.
    assert ring.evict(8, arrived_before=100.0) is False
    assert ring.tail == 8
