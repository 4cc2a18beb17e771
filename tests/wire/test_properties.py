"""Property tests: round trips, and frames agree with a full decode/modify/encode."""

from __future__ import annotations

import copy
import functools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wire.strategies import events, names, rows, tablet_events, vgtids
from vsmux.proto import binlogdata, query
from vsmux.wire import (
    FrameError,
    Header,
    ResponsePacker,
    decode_event,
    encode_response,
    pack_responses,
    rename_table,
    split_response,
)
from vsmux.wire.scan import scan_events, scan_header
from vsmux.wire.upb import message_class

T = binlogdata.VEventType
# Modest by default to keep the suite fast on shared machines; raise it for a
# deeper search, e.g. VSMUX_WIRE_EXAMPLES=2000 (about two minutes on 2 cores).
EXAMPLES = settings(max_examples=int(os.environ.get("VSMUX_WIRE_EXAMPLES", "150")), deadline=None)


def upb_reencode(full_name: str, data: bytes) -> bytes:
    parsed = message_class(full_name).FromString(data)
    return parsed.SerializeToString(deterministic=True)  # type: ignore[no-any-return]


@EXAMPLES
@given(events())
def test_vevent_round_trips_and_matches_protobuf(event: binlogdata.VEvent) -> None:
    data = bytes(event)
    assert binlogdata.VEvent.parse(data) == event
    assert upb_reencode("binlogdata.VEvent", data) == data


@EXAMPLES
@given(vgtids)
def test_vgtid_round_trips_and_matches_protobuf(vgtid: binlogdata.VGtid) -> None:
    data = bytes(vgtid)
    assert binlogdata.VGtid.parse(data) == vgtid
    assert upb_reencode("binlogdata.VGtid", data) == data


@EXAMPLES
@given(rows())
def test_row_round_trips_and_matches_protobuf(row: query.Row) -> None:
    data = bytes(row)
    assert query.Row.parse(data) == row
    assert upb_reencode("query.Row", data) == data


def decode_modify_encode(batch: list[binlogdata.VEvent], keyspace: str) -> bytes:
    """What the gateway would do without frames."""
    out = []
    for event in batch:
        event = copy.deepcopy(event)
        if event.type == T.ROW and event.row_event is not None:
            event.row_event.table_name = f"{keyspace}.{event.row_event.table_name}"
        elif event.type == T.FIELD and event.field_event is not None:
            event.field_event.table_name = f"{keyspace}.{event.field_event.table_name}"
        out.append(event)
    return bytes(binlogdata.VStreamResponse(events=out))


@EXAMPLES
@given(st.lists(tablet_events, max_size=6), names)
def test_split_rename_join_equals_decode_modify_encode(
    batch: list[binlogdata.VEvent], keyspace: str
) -> None:
    body = bytes(binlogdata.VStreamResponse(events=batch))
    frames = split_response(body)
    assert [f.type for f in frames] == [int(e.type) for e in batch]
    joined = encode_response(rename_table(f, keyspace) for f in frames)
    expected = decode_modify_encode(batch, keyspace)
    assert binlogdata.VStreamResponse.parse(joined) == binlogdata.VStreamResponse.parse(expected)
    # The rewrite keeps protobuf's canonical layout, so even the bytes agree.
    assert joined == expected


@EXAMPLES
@given(
    st.lists(st.lists(tablet_events, max_size=4), max_size=4),
    names.filter(bool),  # an empty keyspace means "do not rename" to the packer
    st.integers(min_value=1, max_value=600),
)
def test_split_and_fused_rename_packing_equals_decode_modify_encode(
    batches: list[list[binlogdata.VEvent]], keyspace: str, max_bytes: int
) -> None:
    """The packer's fused rename, over several tablet responses, under any bound."""
    packer = ResponsePacker(max_bytes)
    for batch in batches:
        packer.add(split_response(bytes(binlogdata.VStreamResponse(events=batch))), keyspace)
    assert packer.events == sum(len(b) for b in batches)
    pending = packer.pending_bytes
    bodies = packer.take()
    assert pending == sum(map(len, bodies))
    expected = decode_modify_encode([e for b in batches for e in b], keyspace)
    # Byte for byte what decoding, renaming and re-encoding gives, cut only
    # between events, each body within the bound unless it holds one event.
    assert b"".join(bodies) == expected
    for body in bodies:
        assert len(body) <= max_bytes or len(split_response(body)) == 1
    assert packer.take() == [] and packer.events == 0


@EXAMPLES
@given(
    st.lists(st.lists(tablet_events, min_size=1, max_size=4), max_size=5),
    st.sampled_from([None, "ks"]),
    st.integers(min_value=1, max_value=600),
    st.booleans(),
)
def test_units_never_share_a_body(
    units: list[list[binlogdata.VEvent]], keyspace: str | None, max_bytes: int, use_native: bool
) -> None:
    """``add_unit``: each unit over bodies of its own, in order, under any bound."""
    packer = ResponsePacker(max_bytes, use_native=use_native)
    for unit in units:
        packer.add_unit(split_response(bytes(binlogdata.VStreamResponse(events=unit))), keyspace)
    bodies = packer.take()
    # Every body's events are a slice of one unit, and the slices add up to the units.
    per_unit: list[list[binlogdata.VEvent]] = []
    sizes = [len(unit) for unit in units]
    unit_index, filled = 0, 0
    for body in bodies:
        assert len(body) <= max_bytes or len(split_response(body)) == 1
        count = len(split_response(body))
        if filled == 0:
            per_unit.append([])
        assert filled + count <= sizes[unit_index]  # never runs into the next unit
        per_unit[-1] += binlogdata.VStreamResponse.parse(body).events
        filled += count
        if filled == sizes[unit_index]:
            unit_index, filled = unit_index + 1, 0
    assert unit_index == len(units)
    expected = [
        bytes(binlogdata.VStreamResponse(events=unit))
        if keyspace is None
        else decode_modify_encode(unit, keyspace)
        for unit in units
    ]
    assert [bytes(binlogdata.VStreamResponse(events=e)) for e in per_unit] == expected


@EXAMPLES
@given(events())
def test_header_matches_the_decoded_event(event: binlogdata.VEvent) -> None:
    (frame,) = split_response(bytes(binlogdata.VStreamResponse(events=[event])))
    assert frame.header() == Header(
        int(event.type),
        event.timestamp,
        event.current_time,
        event.keyspace,
        event.shard,
        event.gtid,
    )
    assert decode_event(frame) == event


@EXAMPLES
@given(st.lists(events(), max_size=8), st.integers(min_value=1, max_value=400))
def test_pack_responses_keeps_order_and_bounds(
    batch: list[binlogdata.VEvent], max_bytes: int
) -> None:
    frames = split_response(bytes(binlogdata.VStreamResponse(events=batch)))
    bodies = pack_responses(frames, max_bytes)
    assert b"".join(bodies) == encode_response(frames)
    decoded = [e for body in bodies for e in binlogdata.VStreamResponse.parse(body).events]
    assert decoded == batch
    for body in bodies:
        assert len(body) <= max_bytes or len(split_response(body)) == 1


def exercise(data: bytes) -> None:
    """Every frame operation on ``data``; only FrameError may escape."""
    try:
        frames = split_response(data)
    except FrameError:
        return
    for frame in frames:
        for operation in (
            frame.header,
            functools.partial(rename_table, frame, "ks"),
            functools.partial(pack_responses, [frame], 100, "ks"),
            functools.partial(decode_event, frame),
        ):
            try:
                operation()
            except FrameError:
                pass
    encode_response(frames)


@settings(max_examples=2 * EXAMPLES.max_examples, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    exercise(data)


@settings(max_examples=EXAMPLES.max_examples, deadline=None)
@given(st.binary(max_size=60))
def test_random_events_raise_only_frame_error(data: bytes) -> None:
    # Random event bodies behind a valid record, typed ROW/FIELD so that the
    # rename paths see them too.
    for kind in (b"\x08\x0c", b"\x08\x0d", b""):
        event = kind + data
        exercise(b"\x0a" + bytes([len(event)]) + event if len(event) < 128 else b"")


@settings(max_examples=EXAMPLES.max_examples, deadline=None)
@given(st.lists(tablet_events, min_size=1, max_size=4), st.data())
def test_truncated_responses_raise_frame_error(
    batch: list[binlogdata.VEvent], data: st.DataObject
) -> None:
    body = bytes(binlogdata.VStreamResponse(events=batch))
    cut = data.draw(st.integers(min_value=1, max_value=max(1, len(body) - 1)))
    truncated = body[:cut]
    boundaries = set()
    position = 0
    for event in batch:
        size = len(bytes(binlogdata.VStreamResponse(events=[event])))
        position += size
        boundaries.add(position)
    if cut in boundaries:
        assert len(split_response(truncated)) >= 1
    else:
        try:
            split_response(truncated)
        except FrameError:
            pass
        else:
            raise AssertionError(f"a response cut at byte {cut} of {len(body)} was accepted")


@settings(max_examples=2 * EXAMPLES.max_examples, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=120),
        st.lists(events(), max_size=3).map(
            lambda batch: bytes(binlogdata.VStreamResponse(events=batch))
        ),
    )
)
def test_python_reference_walks_agree_with_upb(data: bytes) -> None:
    """Whatever the pure-Python walk accepts, upb reads the same way."""
    try:
        expected = scan_events(data)
    except FrameError:
        return
    frames = split_response(data)
    assert [f.raw for f in frames] == expected
    for frame in frames:
        try:
            header = scan_header(frame.raw)
        except FrameError:
            continue
        assert frame.header() == header
