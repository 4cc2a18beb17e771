"""Decoding requests as protobuf's runtime does, with errors that name the field."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, query, vtgate, vtrpc
from vsmux.server.intake import count_fields, decode_request
from vsmux.wire.diagnose import find_defect
from vsmux.wire.upb import message_class

MAX = GatewaySettings().max_request_fields


def vstream_bytes(**fields: object) -> bytes:
    return bytes(vtgate.VStreamRequest(**fields))  # type: ignore[arg-type]


def refused(data: bytes, message_type: type = vtgate.VStreamRequest) -> str:
    with pytest.raises(VStreamError) as info:
        decode_request(data, message_type, MAX)
    assert info.value.code == Code.INVALID_ARGUMENT
    return info.value.message


def test_a_valid_request_decodes_unchanged() -> None:
    request = vtgate.VStreamRequest(
        caller_id=vtrpc.CallerId(principal="alice"),
        tablet_type=2,
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace="commerce", shard="-80", gtid="current")]
        ),
        filter=binlogdata.Filter(rules=[binlogdata.Rule(match="/.*")]),
        flags=vtgate.VStreamFlags(heartbeat_interval=1, cells="zone1"),
    )
    assert decode_request(bytes(request), vtgate.VStreamRequest, MAX) == request


def test_an_overlong_varint_names_the_field() -> None:
    message = refused(b"\x10" + b"\xff" * 10 + b"\x01")
    assert message == (
        "malformed vtgate.VStreamRequest: tablet_type: a varint longer than 10 bytes at byte 1"
    )


def test_invalid_utf8_names_the_string_field_with_its_path() -> None:
    good = binlogdata.ShardGtid(keyspace="commerce", shard="-80", gtid="current")
    data = bytes(binlogdata.VGtid(shard_gtids=[good, good]))
    data = data.replace(b"commerce", b"comm\xff\xfece", 2)
    data = data.replace(b"comm\xff\xfece", b"commerce", 1)  # only the second entry is bad
    message = refused(b"\x1a" + bytes([len(data)]) + data)
    assert message.startswith(
        "malformed vtgate.VStreamRequest: vgtid.shard_gtids[1].keyspace: not valid UTF-8"
    )


def test_a_length_past_the_end_names_the_field() -> None:
    message = refused(b"\x1a\x10\x0a\x02")
    assert message == (
        "malformed vtgate.VStreamRequest: vgtid: a length of 16 bytes runs past the end "
        "of its message"
    )


def test_random_bytes_are_invalid_argument() -> None:
    message = refused(bytes(range(256)))
    assert message.startswith("malformed vtgate.VStreamRequest: ")
    assert len(message) < 200


def test_a_field_with_the_wrong_wire_type_is_dropped_like_protobuf_does() -> None:
    # vgtid (3) as a varint: valid protobuf, kept by parsers as an unknown field.
    assert decode_request(b"\x18\x05", vtgate.VStreamRequest, MAX) == vtgate.VStreamRequest()
    good = vstream_bytes(tablet_type=1)
    assert decode_request(b"\x18\x05" + good, vtgate.VStreamRequest, MAX).tablet_type == 1


def test_unknown_fields_are_dropped() -> None:
    unknown = b"\xa0\x06\x01" + b"\xaa\x06\x03abc"  # fields 100 and 101
    assert decode_request(unknown + vstream_bytes(tablet_type=1), vtgate.VStreamRequest, MAX) == (
        vtgate.VStreamRequest(tablet_type=1)
    )


def test_an_execute_session_sent_as_a_varint_is_dropped() -> None:
    request = vtgate.ExecuteRequest(query=query.BoundQuery(sql="SHOW DATABASES"))
    decoded = decode_request(bytes(request) + b"\x10\x05", vtgate.ExecuteRequest, MAX)
    assert decoded.session is None
    assert decoded.query is not None and decoded.query.sql == "SHOW DATABASES"


def test_an_enum_value_outside_the_enum_is_kept_as_a_number() -> None:
    assert int(decode_request(b"\x10\x63", vtgate.VStreamRequest, MAX).tablet_type) == 99


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    # An unknown group nested 10,000 deep.
    data = b"\xa3\x06" * 10_000 + b"\xa4\x06" * 10_000
    message = refused(data)
    assert message.startswith("malformed vtgate.VStreamRequest: ")


def test_diagnosis_names_a_defect_after_many_fields_and_stays_bounded() -> None:
    def cut_after(entries: int) -> bytes:
        body = b"\x0a\x03\x0a\x01a" * entries  # shard_gtids, each with keyspace "a"
        return b"\x1a" + _varint(len(body)) + body + b"\x10"  # then a cut varint

    data = cut_after(30_000)
    assert refused(data).endswith(f"tablet_type: truncated varint at byte {len(data)}")
    # Past the walk's budget the message is generic, and the time still bounded.
    started = time.perf_counter()
    message = refused(cut_after(700_000))
    assert time.perf_counter() - started < 2.0
    assert message == "malformed vtgate.VStreamRequest: not a valid protobuf message"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_diagnosis_agrees_with_protobuf(data: bytes) -> None:
    """A defect is found exactly when protobuf's parser refuses the bytes."""
    from google.protobuf.message import DecodeError

    cls = message_class("vtgate.VStreamRequest")
    try:
        cls().ParseFromString(data)
    except DecodeError:
        refused_by_protobuf = True
    else:
        refused_by_protobuf = False
    defect = find_defect(data, cls.DESCRIPTOR)
    assert (defect is not None) == refused_by_protobuf, defect


def test_many_tiny_elements_are_refused_before_the_slow_decode() -> None:
    # Four MiB of empty caller groups: 7 s in the betterproto classes.
    groups = b"\x22\x00" * (2 * 1024 * 1024 - 8)
    data = b"\x0a" + _varint(len(groups)) + groups
    started = time.perf_counter()
    message = refused(data)
    assert time.perf_counter() - started < 2.0
    assert message == (
        "vtgate.VStreamRequest has more than 50000 fields and list elements, over the limit "
        "(vsmux serve --max-request-fields)"
    )


def test_nested_elements_count_and_the_count_stops_at_the_budget() -> None:
    cls = message_class("vtgate.ExecuteRequest")
    request = cls()
    request.query.sql = "SHOW DATABASES"
    for i in range(10):
        request.query.bind_variables[f"v{i}"].values.add().value = b"x"
    # query, sql, bind_variables (10 entries) and each value's values (1 list, 1 field)
    assert count_fields(request, 1000) == 1 + 1 + 10 + 10 * (1 + 1)
    assert count_fields(request, 5) <= 13
