"""Our generated classes encode exactly like protobuf (upb) from the same descriptors."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from tests.wire.messages import CASES, EVENTS, Case
from vsmux.proto import binlogdata
from vsmux.wire.upb import message_class


def upb_from_dict(case: Case) -> bytes:
    message = json_format.ParseDict(case.as_dict, message_class(case.full_name)())
    return message.SerializeToString(deterministic=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_encoding_is_byte_identical_to_protobuf(case: Case) -> None:
    assert bytes(case.message) == upb_from_dict(case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_protobuf_reencodes_our_bytes_unchanged(case: Case) -> None:
    ours = bytes(case.message)
    parsed = message_class(case.full_name).FromString(ours)
    assert parsed.SerializeToString(deterministic=True) == ours
    expected = json_format.ParseDict(case.as_dict, message_class(case.full_name)())
    assert parsed == expected


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_we_decode_protobufs_bytes_to_the_same_message(case: Case) -> None:
    theirs = upb_from_dict(case)
    decoded = type(case.message).parse(theirs)
    assert decoded == case.message
    assert bytes(decoded) == theirs


def test_cases_cover_every_event_kind_the_gateway_handles() -> None:
    T = binlogdata.VEventType
    kinds = {c.message.type for c in EVENTS}  # type: ignore[attr-defined]
    assert kinds >= {
        T.GTID,
        T.BEGIN,
        T.COMMIT,
        T.ROLLBACK,
        T.DDL,
        T.OTHER,
        T.FIELD,
        T.ROW,
        T.HEARTBEAT,
        T.VGTID,
        T.JOURNAL,
        T.LASTPK,
        T.COPY_COMPLETED,
    }


def test_a_wrong_value_is_caught() -> None:
    """The comparison can fail: one changed leaf changes the bytes."""
    case = next(c for c in CASES if c.id == "VEvent-ROW")
    changed = dict(case.as_dict, shard="80-")
    assert bytes(case.message) != upb_from_dict(
        Case(case.id, case.full_name, case.message, changed)
    )
