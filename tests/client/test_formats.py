"""Output formats: json, maxwell, debezium, raw."""

from __future__ import annotations

import json

from tests.client.events import KS, E, field_event, row_event, simple, vgtid, vgtid_event
from vsmux.client.assembler import Assembler, Unit
from vsmux.client.debezium import VERSION
from vsmux.client.formats import FORMATS, format_unit
from vsmux.proto import binlogdata

POSITION = [{"keyspace": KS, "shard": "-80", "gtid": "MySQL56/u:1-9", "table_p_ks": []}]


def unit(snapshot: bool = False) -> Unit:
    start = vgtid(("-80", "")) if snapshot else None
    [u] = Assembler(start).feed(
        [
            simple(E.BEGIN, ts=1700),
            field_event(),
            row_event(after=[b"1", b"a"]),
            row_event(before=[b"1", b"a"], after=[b"1", b"b"]),
            row_event(before=[b"1", b"b"]),
            vgtid_event("-80", ("-80", "MySQL56/u:1-9")),
            simple(E.COMMIT, ts=1700),
        ]
    )
    return u


def lines(name: str, u: Unit) -> list[dict[str, object]]:
    return [json.loads(line) for line in format_unit(name, u, now_ms=5000)]


def test_json_format() -> None:
    assert lines("json", unit()) == [
        {
            "keyspace": KS,
            "shard": "-80",
            "table": "customer",
            "op": "insert",
            "ts": 1700,
            "position": POSITION,
            "index": 0,
            "snapshot": False,
            "data": {"id": 1, "email": "a"},
        },
        {
            "keyspace": KS,
            "shard": "-80",
            "table": "customer",
            "op": "update",
            "ts": 1700,
            "position": POSITION,
            "index": 1,
            "snapshot": False,
            "data": {"id": 1, "email": "b"},
            "old": {"email": "a"},
        },
        {
            "keyspace": KS,
            "shard": "-80",
            "table": "customer",
            "op": "delete",
            "ts": 1700,
            "position": POSITION,
            "index": 2,
            "snapshot": False,
            "data": {"id": 1, "email": "b"},
        },
    ]


def test_maxwell_format() -> None:
    out = lines("maxwell", unit())
    assert [(o["type"], o.get("xoffset"), o.get("commit")) for o in out] == [
        ("insert", 0, None),
        ("update", 1, None),
        ("delete", None, True),
    ]
    xid = out[0]["xid"]
    assert isinstance(xid, int) and 0 <= xid < 2**63
    assert {o["xid"] for o in out} == {xid}  # one transaction, one xid
    assert out[1] == {
        "database": KS,
        "table": "customer",
        "type": "update",
        "ts": 1700,
        "xid": xid,
        "xoffset": 1,
        "position": json.dumps(POSITION, separators=(",", ":")),
        "shard": "-80",
        "data": {"id": 1, "email": "b"},
        "old": {"email": "a"},
    }
    assert "old" not in out[0] and "old" not in out[2]
    copied = lines("maxwell", unit(snapshot=True))
    assert copied[0]["type"] == "bootstrap-insert"
    assert all("xid" not in o for o in copied)  # like Maxwell's bootstrap rows


def test_maxwell_xid_is_stable_and_differs_between_transactions() -> None:
    def xid_after(gtid: str, shard: str = "-80") -> object:
        [u] = Assembler(None).feed(
            [
                simple(E.BEGIN, shard=shard, ts=1700),
                field_event(shard=shard),
                row_event(after=[b"1", b"a"], shard=shard),
                vgtid_event(shard, ("-80", gtid), ("80-", "MySQL56/v:1-3")),
                simple(E.COMMIT, shard=shard, ts=1700),
            ]
        )
        return lines("maxwell", u)[0]["xid"]

    assert xid_after("MySQL56/u:1-9") == xid_after("MySQL56/u:1-9")  # a replay: same xid
    assert xid_after("MySQL56/u:1-9") != xid_after("MySQL56/u:1-10")
    assert xid_after("MySQL56/v:1-3", shard="80-") != xid_after("MySQL56/v:1-3")


def test_debezium_format() -> None:
    out = lines("debezium", unit())
    assert [(o["op"], o["before"], o["after"]) for o in out] == [
        ("c", None, {"id": 1, "email": "a"}),
        ("u", {"id": 1, "email": "a"}, {"id": 1, "email": "b"}),
        ("d", {"id": 1, "email": "b"}, None),
    ]
    # Every key of the connector's record value, in its order.
    assert list(out[0]) == [
        "before",
        "after",
        "source",
        "transaction",
        "op",
        "ts_ms",
        "ts_us",
        "ts_ns",
    ]
    assert (out[0]["transaction"], out[0]["ts_ms"], out[0]["ts_us"]) == (None, 5000, 5_000_000)
    source = out[0]["source"]
    assert isinstance(source, dict)
    assert list(source.items()) == [
        ("version", VERSION),
        ("connector", "vitess"),
        ("name", "vsmux"),
        ("ts_ms", 1_700_000),
        ("snapshot", "false"),
        ("db", ""),
        ("sequence", None),
        ("ts_us", 1_700_000_000),
        ("ts_ns", 1_700_000_000_000),
        ("keyspace", KS),
        ("table", "customer"),
        ("shard", "-80"),
        ("vgtid", json.dumps(POSITION, separators=(",", ":"))),
    ]


def test_debezium_copied_rows_are_creates_as_the_connector_prints_them() -> None:
    """The connector has no "r": VStream copy rows come out as "c", snapshot "false"."""
    [copied, *_] = lines("debezium", unit(snapshot=True))
    assert copied["op"] == "c"
    assert copied["source"]["snapshot"] == "false"  # type: ignore[index]


def test_debezium_transaction_block_with_transaction_metadata() -> None:
    u = unit()
    out = [
        json.loads(line)
        for line in format_unit("debezium", u, now_ms=5000, transaction_metadata=True)
    ]
    vgtid = json.dumps(POSITION, separators=(",", ":"))
    assert [o["transaction"] for o in out] == [
        {"id": vgtid, "total_order": n, "data_collection_order": n} for n in (1, 2, 3)
    ]
    assert all(o["source"]["vgtid"] == vgtid for o in out)


def test_raw_format_prints_every_event_with_proto_field_names() -> None:
    u = unit()
    out = lines("raw", u)
    assert len(out) == len(u.events) == 7
    assert out[0] == {"type": "BEGIN", "timestamp": "1700", "keyspace": KS, "shard": "-80"}
    assert out[2]["row_event"]["row_changes"][0]["after"] == {  # type: ignore[index]
        "lengths": ["1", "1"],
        "values": "MWE=",
    }
    assert out[5]["vgtid"]["shard_gtids"][0]["gtid"] == "MySQL56/u:1-9"  # type: ignore[index]
    parsed = binlogdata.VEvent.from_dict(out[2])
    assert parsed == u.events[2]


def test_units_without_rows_print_nothing_except_raw() -> None:
    [hb] = Assembler().feed([simple(E.HEARTBEAT, "")])
    for name in FORMATS:
        assert (format_unit(name, hb) == []) == (name != "raw")


def test_non_ascii_is_kept() -> None:
    [u] = Assembler().feed(
        [simple(E.BEGIN), field_event(), row_event(after=[b"1", "é☃".encode()]), simple(E.COMMIT)]
    )
    assert "é☃" in format_unit("json", u)[0]
