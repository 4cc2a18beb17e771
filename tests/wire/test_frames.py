"""Frames: splitting, headers, renames, packing, and clear errors on bad bytes."""

from __future__ import annotations

import pytest

from tests.wire.messages import EVENTS
from vsmux.proto import binlogdata, query
from vsmux.wire import (
    Frame,
    FrameError,
    Header,
    decode_event,
    encode_response,
    frame_of,
    pack_responses,
    record_size,
    rename_table,
    split_response,
)
from vsmux.wire.header import read_header
from vsmux.wire.scan import scan_events, scan_header
from vsmux.wire.varint import encode_varint, read_varint

B = binlogdata
T = binlogdata.VEventType
ALL_EVENTS = [case.message for case in EVENTS]


def body_of(*events: binlogdata.VEvent) -> bytes:
    return bytes(B.VStreamResponse(events=list(events)))


def row(table: str, **fields: object) -> binlogdata.VEvent:
    return B.VEvent(
        type=T.ROW,
        row_event=B.RowEvent(
            table_name=table,
            row_changes=[B.RowChange(after=query.Row(lengths=[1, -1], values=b"x"))],
        ),
        **fields,  # type: ignore[arg-type]
    )


def test_split_then_join_gives_the_same_bytes() -> None:
    body = body_of(*ALL_EVENTS)
    frames = split_response(body)
    assert [f.type for f in frames] == [int(e.type) for e in ALL_EVENTS]  # type: ignore[attr-defined]
    assert [decode_event(f) for f in frames] == ALL_EVENTS
    assert encode_response(frames) == body


def test_empty_response_has_no_frames() -> None:
    assert split_response(b"") == []
    assert encode_response([]) == b""


def test_split_accepts_bytearray_and_memoryview() -> None:
    body = body_of(*ALL_EVENTS[:3])
    for view in (bytearray(body), memoryview(body)):
        assert [f.raw for f in split_response(view)] == [f.raw for f in split_response(body)]  # type: ignore[arg-type]


def test_unknown_response_fields_are_skipped() -> None:
    # As protobuf does: a field the response does not declare is ignored.
    event = bytes(row("t"))
    body = b"\x12\x00" + b"\x0a" + bytes([len(event)]) + event + b"\x18\x05"
    assert [f.raw for f in split_response(body)] == [event]
    assert scan_events(body) == [event]


def test_large_event_uses_a_three_byte_length() -> None:
    big = row("t")
    big.row_event.row_changes[0].after = query.Row(lengths=[40_000], values=b"v" * 40_000)  # type: ignore[union-attr]
    body = body_of(big, row("u"))
    frames = split_response(body)
    assert len(frames[0].raw) > 1 << 14
    assert encode_response(frames) == body
    renamed = rename_table(frames[0], "ks")
    assert decode_event(renamed).row_event.table_name == "ks.t"  # type: ignore[union-attr]


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: e.type.name)
def test_header_is_the_events_header(event: binlogdata.VEvent) -> None:
    frame = frame_of(event)
    expected = Header(
        int(event.type),
        event.timestamp,
        event.current_time,
        event.keyspace,
        event.shard,
        event.gtid,
    )
    assert frame.header() == expected
    assert frame.header() is frame.header()  # scanned once
    assert scan_header(frame.raw) == expected  # the pure-Python reference agrees


def test_type_not_first_or_absent_is_still_read() -> None:
    # Fields in reverse order, as a non-canonical encoder might write them.
    raw = b"\xb2\x01\x02ks" + b"\x08\x0e"
    assert Frame.from_bytes(raw).type == T.HEARTBEAT
    assert Frame.from_bytes(b"").type == 0
    assert Frame.from_bytes(b"\x10\x05").header().timestamp == 5
    # A repeated scalar: the last value wins, as in every protobuf decoder.
    assert read_header(b"\x10\x05\x10\x07").timestamp == 7


def test_rename_row_and_field_events() -> None:
    field = B.VEvent(
        type=T.FIELD,
        timestamp=3,
        field_event=B.FieldEvent(table_name="customer", fields=[query.Field(name="id")]),
        keyspace="commerce",
    )
    for event, attribute in (
        (row("customer", timestamp=9, keyspace="commerce"), "row_event"),
        (field, "field_event"),
    ):
        frame = frame_of(event)
        header = frame.header()
        renamed = rename_table(frame, "commerce")
        assert renamed is not frame
        assert renamed.type == frame.type
        assert renamed.header() is header
        decoded = decode_event(renamed)
        assert getattr(decoded, attribute).table_name == "commerce.customer"
        getattr(event, attribute).table_name = "commerce.customer"
        assert renamed.raw == bytes(event)


@pytest.mark.parametrize(
    "event",
    [
        row("", timestamp=1),  # no table_name on the wire: one is inserted
        row("t" * 200, timestamp=1),  # a two-byte name length
        row("customer", gtid="MySQL56/x:1-2", statement="insert"),  # fields before row_event
        row("customer", timestamp=-1),  # a ten-byte timestamp
        row("émoji-☃", timestamp=1),
        B.VEvent(type=T.ROW, row_event=B.RowEvent(table_name="t")),  # no rows
    ],
    ids=["empty-name", "long-name", "gtid-first", "negative-timestamp", "unicode", "no-rows"],
)
def test_rename_unusual_layouts(event: binlogdata.VEvent) -> None:
    renamed = rename_table(frame_of(event), "ks☃")
    name = event.row_event.table_name  # type: ignore[union-attr]
    event.row_event.table_name = f"ks☃.{name}"  # type: ignore[union-attr]
    assert renamed.raw == bytes(event)


def test_rename_leaves_other_events_alone() -> None:
    for event in ALL_EVENTS:
        if event.type not in (T.ROW, T.FIELD):  # type: ignore[attr-defined]
            frame = frame_of(event)
            assert rename_table(frame, "ks") is frame
    payloadless = frame_of(B.VEvent(type=T.ROW, timestamp=4))
    assert rename_table(payloadless, "ks") is payloadless


def test_rename_of_an_empty_sub_message_followed_by_field_one_like_bytes() -> None:
    # An empty row_event, then bytes that look like a table name: the fast
    # path must not read past the sub-message.
    raw = b"\x08\x0c\x2a\x00" + b"\xb2\x01\x02ks"
    renamed = rename_table(Frame.from_bytes(raw), "k")
    assert decode_event(renamed).row_event.table_name == "k."  # type: ignore[union-attr]
    assert decode_event(renamed).keyspace == "ks"


def test_pack_responses_bounds_and_order() -> None:
    frames = [frame_of(row(f"t{i}")) for i in range(10)]
    size = record_size(frames[0])
    assert size == len(encode_response(frames[:1]))
    bodies = pack_responses(frames, 3 * size)
    assert [len(split_response(b)) for b in bodies] == [3, 3, 3, 1]
    assert b"".join(bodies) == encode_response(frames)
    assert pack_responses(frames, 10**9) == [encode_response(frames)]
    assert pack_responses([], 100) == []


def test_pack_responses_puts_an_oversized_frame_alone() -> None:
    small = frame_of(row("a"))
    big = frame_of(row("b" * 300))
    bodies = pack_responses([small, big, small], record_size(small) + 10)
    assert [split_response(b)[0].raw for b in bodies] == [small.raw, big.raw, small.raw]
    assert len(bodies[1]) > record_size(small) + 10


def test_pack_responses_rejects_a_non_positive_bound() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        pack_responses([], 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x0a", "truncated"),
        (b"\x0a\x05\x08\x01", "past the end"),
        (b"\x0a\xff", "truncated"),
        (b"\x00\x00", "field number 0"),
        (b"\x0a\x01\x08\x17", "wire type 7"),
        (b"\x0a" + b"\xff" * 11, "longer than 10 bytes"),
    ],
)
def test_malformed_responses_raise_frame_error(body: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        split_response(body)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x08",  # truncated varint
        b"\x1a\x05ab",  # string runs past the end
        b"\x1a\x02\xff\xfe",  # gtid not UTF-8
        b"\x0f",  # wire type 7
    ],
)
def test_malformed_events_raise_frame_error_on_header(raw: bytes) -> None:
    with pytest.raises(FrameError):
        Frame(1, raw).header()
    with pytest.raises(FrameError):
        scan_header(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x08\x0c\x2a\x05\x0a",  # row_event runs past the end
        b"\x08\x0c\x2a\x03\x0a\x09a",  # table name runs past the row_event
        b"\x08\x0c\x10",  # truncated before the row_event
        b"\x08\x0c\x17",  # wire type 7 before the row_event
    ],
)
def test_malformed_table_events_raise_frame_error_on_rename(raw: bytes) -> None:
    with pytest.raises(FrameError):
        rename_table(Frame(T.ROW, raw), "ks")


def test_decode_event_reports_frame_error() -> None:
    with pytest.raises(FrameError, match="does not decode"):
        decode_event(Frame(T.ROW, b"\x2a\x05\x0a"))


def test_varints() -> None:
    for value in (0, 1, 127, 128, 300, 16383, 16384, 2**63 - 1, 2**64 - 1):
        encoded = encode_varint(value)
        assert read_varint(encoded + b"\x00", 0) == (value, len(encoded))
    assert encode_varint(-1) == encode_varint(2**64 - 1)
    with pytest.raises(FrameError):
        read_varint(b"\x80", 0)
