"""Row decoding: every query.Type, NULL vs empty, errors that name the table."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.client.events import CUSTOMER, KS, field_event, fields, row, row_event
from vsmux.client.rows import (
    RowChangeRecord,
    RowDecodeError,
    SchemaCache,
    decode_row,
    decode_value,
    row_changes,
)
from vsmux.proto import binlogdata, query

T = query.Type


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# (type, MySQL wire bytes, decoded value, decoded value of the empty string or
# the exception type an empty value raises)
CASES: list[tuple[query.Type, bytes, object, object]] = [
    (T.INT8, b"-128", -128, ValueError),
    (T.UINT8, b"255", 255, ValueError),
    (T.INT16, b"-32768", -32768, ValueError),
    (T.UINT16, b"65535", 65535, ValueError),
    (T.INT24, b"-8388608", -8388608, ValueError),
    (T.UINT24, b"16777215", 16777215, ValueError),
    (T.INT32, b"-2147483648", -2147483648, ValueError),
    (T.UINT32, b"4294967295", 4294967295, ValueError),
    (T.INT64, b"-9223372036854775808", -9223372036854775808, ValueError),
    (T.UINT64, b"18446744073709551615", 18446744073709551615, ValueError),
    (T.FLOAT32, b"1.5", 1.5, ValueError),
    (T.FLOAT64, b"-2.25e-10", -2.25e-10, ValueError),
    (T.DECIMAL, b"12345678901234567890.123456789", "12345678901234567890.123456789", ""),
    (T.TIMESTAMP, b"2024-02-29 23:59:59.123456", "2024-02-29 23:59:59.123456", ""),
    (T.DATE, b"2024-02-29", "2024-02-29", ""),
    (T.TIME, b"-838:59:59", "-838:59:59", ""),
    (T.DATETIME, b"0000-00-00 00:00:00", "0000-00-00 00:00:00", ""),
    (T.YEAR, b"2024", "2024", ""),
    (T.TEXT, "naïve ☃".encode(), "naïve ☃", ""),
    (T.VARCHAR, b"hello", "hello", ""),
    (T.CHAR, b"ab", "ab", ""),
    (T.BLOB, b"\x00\xff\x10", b64(b"\x00\xff\x10"), ""),
    (T.VARBINARY, b"\x80\x81", b64(b"\x80\x81"), ""),
    (T.BINARY, b"\x00\x00", "AAA=", ""),
    (T.GEOMETRY, b"\x00\x00\x00\x00\x01\x01", b64(b"\x00\x00\x00\x00\x01\x01"), ""),
    (T.VECTOR, b"\x00\x00\x80?", b64(b"\x00\x00\x80?"), ""),
    (T.RAW, b"\x01", "AQ==", ""),
    (T.BIT, b"\x01\x00", 256, 0),
    (T.ENUM, b"medium", "medium", ""),
    (T.SET, b"a,c", ["a", "c"], []),
    (T.JSON, b'{"a": [1, null, "x"]}', {"a": [1, None, "x"]}, ValueError),
    (T.HEXNUM, b"0x1F", "0x1F", ""),
    (T.HEXVAL, b"X'1F'", "X'1F'", ""),
    (T.BITNUM, b"0b101", "0b101", ""),
    (T.EXPRESSION, b"a+1", "a+1", ""),
    (T.TUPLE, b"(1,2)", "(1,2)", ""),
    (T.ROW_TUPLE, b"(1,2)", "(1,2)", ""),
    (T.NULL_TYPE, b"", None, None),
]


def test_cases_cover_every_type() -> None:
    assert {c[0] for c in CASES} == set(query.Type)


@pytest.mark.parametrize(("type_", "raw", "value", "empty"), CASES, ids=lambda c: str(c))
def test_decode_each_type_with_null_and_empty(
    type_: query.Type, raw: bytes, value: object, empty: object
) -> None:
    cols = fields(("v", type_), ("n", type_), ("e", T.VARCHAR))
    decoded = decode_row(cols, row([raw, None, b""]))
    assert decoded == {"v": value, "n": None, "e": ""}
    assert type(decoded["v"]) is type(value)
    if isinstance(empty, type) and issubclass(empty, Exception):
        with pytest.raises(RowDecodeError, match="column 'v'"):
            decode_row(cols[:1], row([b""]))
    else:
        assert decode_row(cols[:1], row([b""])) == {"v": empty}


def test_unknown_type_falls_back_on_its_flag_bits() -> None:
    assert decode_value(0x100 | 0x7F, b"42") == 42  # ISINTEGRAL
    assert decode_value(0x400 | 0x7F, b"0.5") == 0.5  # ISFLOAT
    assert decode_value(0x2000 | 0x7F, b"\xff") == "/w=="  # ISBINARY
    assert decode_value(0x7F, b"text") == "text"


def test_invalid_utf8_text_is_replaced_not_fatal() -> None:
    assert decode_value(T.VARCHAR, b"a\xffb") == "a\ufffdb"


@pytest.mark.parametrize(
    ("lengths", "values", "message"),
    [
        ([1], b"1", "row has 1 values but the table has 2 columns"),
        ([1, 5], b"1abc", "column 'email': length 5 does not fit"),
        ([1, -2], b"1", "column 'email': length -2"),
        ([1, 1], b"1ab", "1 bytes beyond its last column"),
        ([1, 1], b"xa", "column 'id': b'x' is not a valid INT64 value"),
    ],
)
def test_malformed_rows_raise_clear_errors(lengths: list[int], values: bytes, message: str) -> None:
    with pytest.raises(RowDecodeError, match=message.replace("(", r"\(")):
        decode_row(CUSTOMER, query.Row(lengths=lengths, values=values))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=20)), min_size=1, max_size=12))
def test_binary_round_trip(values: list[bytes | None]) -> None:
    cols = fields(*[(f"c{i}", T.VARBINARY) for i in range(len(values))])
    decoded = decode_row(cols, row(values))
    assert list(decoded.values()) == [None if v is None else b64(v) for v in values]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=8))
def test_integer_round_trip(values: list[int | None]) -> None:
    cols = fields(*[(f"c{i}", T.INT64) for i in range(len(values))])
    raw = [None if v is None else str(v).encode() for v in values]
    assert list(decode_row(cols, row(raw)).values()) == values


def change(
    before: list[bytes | None] | None, after: list[bytes | None] | None
) -> binlogdata.RowEvent:
    event = row_event(before=before, after=after).row_event
    assert event is not None
    return event


def test_row_changes_insert_update_delete() -> None:
    assert row_changes(CUSTOMER, change(None, [b"1", b"a"])) == [
        RowChangeRecord("insert", {"id": 1, "email": "a"})
    ]
    assert row_changes(CUSTOMER, change([b"1", b"a"], [b"1", None])) == [
        RowChangeRecord(
            "update",
            {"id": 1, "email": None},
            old={"email": "a"},
            before={"id": 1, "email": "a"},
        )
    ]
    assert row_changes(CUSTOMER, change([b"1", b""], None)) == [
        RowChangeRecord("delete", {"id": 1, "email": ""}, before={"id": 1, "email": ""})
    ]
    with pytest.raises(RowDecodeError, match="neither a before nor an after"):
        row_changes(CUSTOMER, change(None, None))


def test_update_old_holds_only_changed_columns_null_vs_empty() -> None:
    [record] = row_changes(CUSTOMER, change([b"1", None], [b"1", b""]))
    assert record.old == {"email": None}
    [same] = row_changes(CUSTOMER, change([b"1", b"x"], [b"1", b"x"]))
    assert same.old == {}


def test_schema_cache_learns_replaces_marks_stale_and_clears() -> None:
    cache = SchemaCache()
    first = field_event()
    assert first.field_event is not None
    cache.learn(first.field_event)
    ks, shard, table, records = cache.changes(change(None, [b"7", b"e"]))
    assert (ks, shard, table) == (KS, "-80", "customer")
    assert records[0].data == {"id": 7, "email": "e"}

    # A new FIELD replaces the column list.
    renamed = field_event(cols=fields(("id", T.INT64), ("mail", T.VARCHAR)))
    assert renamed.field_event is not None
    cache.learn(renamed.field_event)
    assert cache.changes(change(None, [b"7", b"e"]))[3][0].data == {"id": 7, "mail": "e"}

    # A DDL marks one shard's tables stale; they still decode.
    other = field_event(shard="80-")
    assert other.field_event is not None
    cache.learn(other.field_event)
    cache.ddl_applied(KS, "-80")
    assert cache.is_stale(KS, "-80", "customer") and not cache.is_stale(KS, "80-", "customer")
    assert cache.changes(change(None, [b"7", b"e"]))[3][0].data == {"id": 7, "mail": "e"}
    cache.learn(renamed.field_event)
    assert not cache.is_stale(KS, "-80", "customer")

    # clear() forgets everything: a ROW then names its table and shard.
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(RowDecodeError) as info:
        cache.changes(change(None, [b"7", b"e"]))
    assert "commerce.customer" in str(info.value)
    assert "commerce/-80" in str(info.value)


def test_schema_cache_uses_event_keyspace_when_field_event_lacks_it() -> None:
    cache = SchemaCache()
    cache.learn(binlogdata.FieldEvent(table_name="t", fields=CUSTOMER), KS, "0")
    assert cache.fields(KS, "0", "t") == CUSTOMER
    rows = binlogdata.RowEvent(
        table_name="t", row_changes=[binlogdata.RowChange(after=row([b"1", b"x"]))]
    )
    assert cache.changes(rows, KS, "0")[3][0].data == {"id": 1, "email": "x"}


def test_decode_error_inside_cache_names_table_and_shard() -> None:
    cache = SchemaCache()
    event = field_event()
    assert event.field_event is not None
    cache.learn(event.field_event)
    with pytest.raises(RowDecodeError, match=r"table commerce.customer on shard commerce/-80: "):
        cache.changes(change(None, [b"1"]))


def test_forget_shard_after_ddl_keeps_decoding_untouched_tables() -> None:
    # What a consumer that forgets a shard on DDL relies on: the server sends
    # no new FIELD for tables the DDL did not change.
    cache = SchemaCache()
    event = field_event()
    assert event.field_event is not None
    cache.learn(event.field_event)
    cache.forget_shard(KS, "-80")
    assert cache.changes(change(None, [b"1", b"x"]))[3][0].data == {"id": 1, "email": "x"}
