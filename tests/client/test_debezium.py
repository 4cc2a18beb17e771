"""Values and positions as Debezium's Vitess connector renders them (default settings)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.client.events import KS, E, field_event, row, row_event, simple, vgtid_event
from vsmux.client.assembler import Assembler, RowChange
from vsmux.client.debezium import (
    column_converter,
    enum_values,
    row_value,
    transaction_blocks,
    vgtid_text,
)
from vsmux.client.formats import format_unit
from vsmux.client.rows import RowChangeRecord
from vsmux.proto import binlogdata, query

T = query.Type
NOT_NULL = 1


def value(
    type_: query.Type,
    raw: bytes | None,
    column_type: str = "",
    *,
    decimals: int = 0,
    length: int = 0,
    not_null: bool = False,
    strings: bool = False,
) -> Any:
    field = query.Field(
        name="c",
        type=type_,
        column_type=column_type,
        decimals=decimals,
        column_length=length,
        flags=NOT_NULL if not_null else 0,
    )
    convert = column_converter(field, strings)
    assert convert is not None
    return convert(raw)


@pytest.mark.parametrize(
    "type_",
    [T.INT8, T.UINT8, T.INT16, T.UINT16, T.INT24, T.UINT24, T.INT32, T.UINT32, T.INT64],
)
def test_integers_are_numbers(type_: query.Type) -> None:
    assert value(type_, b"-12" if type_.name.startswith("INT") else b"200") in (-12, 200)


def test_bigint_unsigned_is_a_string_and_year_a_number() -> None:
    assert value(T.UINT64, b"18446744073709551615") == "18446744073709551615"
    assert value(T.YEAR, b"2024", "year") == 2024


def test_float_is_the_32_bit_value_widened_and_double_is_exact() -> None:
    assert value(T.FLOAT32, b"1.1", "float") == 1.100000023841858
    assert value(T.FLOAT64, b"1.1", "double") == 1.1


def test_decimal_and_text_types_are_the_text_sent() -> None:
    assert value(T.DECIMAL, b"12.50", "decimal(10,2)") == "12.50"
    assert value(T.VARCHAR, "é".encode(), "varchar(8)") == "é"
    assert value(T.CHAR, b"ab", "char(2)") == "ab"
    assert value(T.TEXT, b"long", "text") == "long"
    assert value(T.JSON, b'{"a": [1, 2]}', "json") == '{"a": [1, 2]}'  # not parsed


def test_binary_types_are_base64_unless_their_column_type_is_text() -> None:
    assert value(T.VARBINARY, b"\x00\xff", "varbinary(64)") == "AP8="
    assert value(T.BINARY, b"\x01", "binary(1)") == "AQ=="
    assert value(T.BLOB, b"\x02", "blob") == "Ag=="
    assert value(T.VARBINARY, b"x", "varchar(10)") == "x"
    assert value(T.BINARY, b"y", "char(4)") == "y"
    assert value(T.BLOB, b"z", "mediumtext") == "z"


def test_bit() -> None:
    assert value(T.BIT, b"\x01", "bit(1)", length=1) is True
    assert value(T.BIT, b"\x00", "bit(1)", length=1) is False
    assert value(T.BIT, b"\x01\x02", "bit(16)", length=16) == "AQI="


def test_enum_and_set() -> None:
    assert enum_values("enum('a''b','c')") == ["a'b", "c"]
    assert value(T.ENUM, b"m", "enum('s','m')", strings=True) == "m"
    assert value(T.ENUM, b"2", "enum('s','m')") == "m"
    assert value(T.ENUM, b"9", "enum('s','m')") == ""
    assert value(T.SET, b"a,c", "set('a','b','c')", strings=True) == "a,c"
    assert value(T.SET, b"5", "set('a','b','c')") == "a,c"
    assert value(T.SET, b"0", "set('a','b','c')") == ""
    assert value(T.BINARY, b"1", "enum('x','y')") == "x"


def test_date_is_days_since_the_epoch() -> None:
    assert value(T.DATE, b"2024-01-31", "date") == 19753
    assert value(T.DATE, b"1969-12-31", "date") == -1
    assert value(T.DATE, b"0001-01-01", "date") == -719162
    assert value(T.DATE, b"0000-00-00", "date") is None
    assert value(T.DATE, b"0000-00-00", "date", not_null=True) == 0


def test_time_is_microseconds() -> None:
    assert value(T.TIME, b"12:34:56.5", "time(1)", decimals=1) == 45_296_500_000
    assert value(T.TIME, b"-838:59:59", "time") == -3_020_399_000_000
    assert value(T.TIME, b"-00:30:00", "time") == -1_800_000_000
    assert value(T.TIME, b"25:00:00", "time") == 90_000_000_000


def test_datetime_is_epoch_time_at_the_columns_precision() -> None:
    noon = 1_706_702_400
    assert value(T.DATETIME, b"2024-01-31 12:00:00", "datetime") == noon * 1000
    assert value(T.DATETIME, b"2024-01-31 12:00:00.123", "datetime(3)", decimals=3) == (
        noon * 1000 + 123
    )
    assert value(T.DATETIME, b"2024-01-31 12:00:00.123456", "datetime(6)", decimals=6) == (
        noon * 1_000_000 + 123_456
    )
    assert value(T.DATETIME, b"1969-12-31 23:59:59", "datetime") == -1000
    assert value(T.DATETIME, b"0000-00-00 00:00:00", "datetime") is None
    assert value(T.DATETIME, b"0000-00-00 00:00:00", "datetime", not_null=True) == 0


def test_timestamp_is_an_iso_string_in_utc() -> None:
    assert value(T.TIMESTAMP, b"2024-01-31 12:00:00", "timestamp") == "2024-01-31T12:00:00Z"
    assert (
        value(T.TIMESTAMP, b"2024-01-31 12:00:00.500", "timestamp(3)", decimals=3)
        == "2024-01-31T12:00:00.500Z"
    )
    assert (
        value(T.TIMESTAMP, b"2024-01-31 12:00:00.000001", "timestamp(6)", decimals=6)
        == "2024-01-31T12:00:00.000001Z"
    )
    assert value(T.TIMESTAMP, b"0000-00-00 00:00:00", "timestamp") is None
    assert (
        value(T.TIMESTAMP, b"0000-00-00 00:00:00", "timestamp", not_null=True)
        == "1970-01-01T00:00:00Z"
    )


def test_null_and_not_null() -> None:
    assert value(T.INT64, None) is None
    assert value(T.INT64, None, not_null=True) == 0
    assert value(T.VARCHAR, None, not_null=True) == ""
    assert value(T.VARCHAR, b"") == ""  # empty is not NULL


def test_unknown_types_are_left_out_of_the_row() -> None:
    fields = [
        query.Field(name="id", type=T.INT64),
        query.Field(name="shape", type=T.GEOMETRY, column_type="geometry"),
        query.Field(name="v", type=T.VECTOR),
        query.Field(name="name", type=T.VARCHAR),
    ]
    image = row([b"7", b"\x00\x01", b"\x02", None])
    assert row_value(fields, image) == {"id": 7, "name": None}
    assert row_value(fields, None) is None


def test_vgtid_is_serialised_as_the_connector_does() -> None:
    lastpk = query.QueryResult(
        fields=[query.Field(name="sku", type=T.VARBINARY, charset=63, flags=16515)],
        rows=[row([b"\x1fk"])],
    )
    position = binlogdata.VGtid(
        shard_gtids=[
            binlogdata.ShardGtid(keyspace=KS, shard="-80", gtid="MySQL56/u:1-9"),
            binlogdata.ShardGtid(
                keyspace=KS,
                shard="80-",
                gtid="MySQL56/u:1-3",
                table_p_ks=[
                    binlogdata.TableLastPk(table_name="product", lastpk=lastpk),
                    binlogdata.TableLastPk(table_name="corder"),
                ],
            ),
        ]
    )
    text = vgtid_text(position)
    assert text == (
        '[{"keyspace":"commerce","shard":"-80","gtid":"MySQL56/u:1-9","table_p_ks":[]},'
        '{"keyspace":"commerce","shard":"80-","gtid":"MySQL56/u:1-3","table_p_ks":['
        '{"table_name":"product","lastpk":{"fields":[{"name":"sku","type":"VARBINARY",'
        '"charset":63,"flags":16515}],"rows":[{"lengths":["2"],"values":"\\u001Fk"}]}},'
        '{"table_name":"corder","lastpk":{"fields":[],"rows":[]}}]}]'
    )
    assert json.loads(text)[1]["table_p_ks"][0]["lastpk"]["rows"][0]["values"] == "\x1fk"
    assert vgtid_text(None) == "[]"


def test_enum_names_or_numbers_follow_the_field_events_flag() -> None:
    """ENUM values are names when the FIELD says so, else numbers to map to names."""
    cols = [
        query.Field(name="id", type=T.INT64),
        query.Field(name="size", type=T.ENUM, column_type="enum('1','2','3')"),
    ]

    def after(strings: bool) -> object:
        described = field_event(cols=cols)
        assert described.field_event is not None
        described.field_event.enum_set_string_values = strings
        [unit] = Assembler().feed(
            [
                simple(E.BEGIN),
                described,
                row_event(after=[b"1", b"3"]),
                vgtid_event("-80", ("-80", "MySQL56/u:1-1")),
                simple(E.COMMIT),
            ]
        )
        [line] = format_unit("debezium", unit)
        return json.loads(line)["after"]

    assert after(True) == {"id": 1, "size": "3"}
    assert after(False) == {"id": 1, "size": "3"}  # index 3 is the name '3'
    cols[1].column_type = "enum('s','m','l')"
    assert after(True) == {"id": 1, "size": "3"}
    assert after(False) == {"id": 1, "size": "l"}


def test_transaction_blocks_count_per_transaction_and_per_table() -> None:
    def change(table: str) -> RowChange:
        return RowChange(KS, "-80", table, RowChangeRecord("insert", {}))

    rows = [change("customer"), change("corder"), change("corder"), change("customer")]
    assert [
        (b["total_order"], b["data_collection_order"]) for b in transaction_blocks(rows, "[]")
    ] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert {b["id"] for b in transaction_blocks(rows, "X")} == {"X"}
