"""GTID sets, row encoding, filters, routing and workload determinism."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from vsmux.core.quoting import quote
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, query
from vsmux.sources._simulated import GtidSet, SimulatedCluster
from vsmux.sources._simulated.filters import TableFilter
from vsmux.sources._simulated.gtid import GtidParseError
from vsmux.sources._simulated.routing import check_partition, keyspace_id, shard_for
from vsmux.sources._simulated.rows import decode_row, encode_row, encode_row_event
from vsmux.topology import KeyRange

UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "ff450168-5ed6-11ed-9415-954189eafa28"

spans = st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 50)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([UUID_A, UUID_B]), spans, min_size=1))
def test_gtid_set_round_trips(groups: dict[str, list[tuple[int, int]]]) -> None:
    text = "MySQL56/" + ",".join(
        uuid + "".join(f":{lo}-{lo + width}" for lo, width in parts)
        for uuid, parts in groups.items()
    )
    parsed = GtidSet.parse(text)
    assert GtidSet.parse(str(parsed)) == parsed
    assert parsed.contains(parsed)
    for uuid, parts in groups.items():
        lo, width = parts[0]
        assert parsed.contains(GtidSet({uuid: ((lo, lo + width),)}))


def test_gtid_set_basics() -> None:
    assert str(GtidSet.single(UUID_A, 5)) == f"MySQL56/{UUID_A}:1-5"
    assert str(GtidSet.single(UUID_A, 1)) == f"MySQL56/{UUID_A}:1"
    assert GtidSet.parse(f"MySQL56/{UUID_A}:1-5").last_of(UUID_A) == 5
    assert GtidSet.parse(f"MySQL56/{UUID_A}:1-3:5-6").last_of(UUID_A) == -1
    assert GtidSet.parse(f"MySQL56/{UUID_A}:1-3:4-6").last_of(UUID_A) == 6
    assert GtidSet.parse("MySQL56/").last_of(UUID_A) == 0
    assert not GtidSet.single(UUID_A, 5).contains(GtidSet.single(UUID_A, 6))
    for bad in ("MariaDB/0-1-123", f"{UUID_A}:1-5", "MySQL56/nope:1-2", f"MySQL56/{UUID_A}:5-1"):
        with pytest.raises(GtidParseError):
            GtidSet.parse(bad)


values = st.lists(st.one_of(st.none(), st.binary(max_size=300)), min_size=1, max_size=8)


@settings(max_examples=80, deadline=None)
@given(values, values)
def test_row_encoding_matches_protobuf(
    before: list[bytes | None], after: list[bytes | None]
) -> None:
    row = query.Row.parse(encode_row(before))
    assert decode_row(row) == tuple(before)
    expected = query.Row(
        lengths=[-1 if v is None else len(v) for v in before],
        values=b"".join(v for v in before if v),
    )
    assert row == expected
    raw = encode_row_event(1700000000, "ks", "-80", "t", [(tuple(before), tuple(after))])
    event = binlogdata.VEvent.parse(raw)
    assert event.type == binlogdata.VEventType.ROW and event.timestamp == 1700000000
    assert (event.keyspace, event.shard) == ("ks", "-80")
    assert event.row_event is not None and event.row_event.table_name == "t"
    change = event.row_event.row_changes[0]
    assert change.before is not None and change.after is not None
    assert decode_row(change.after) == tuple(after)


def test_filters() -> None:
    def rule(match: str, text: str = "") -> binlogdata.Rule:
        return binlogdata.Rule(match=match, filter=text)

    f = TableFilter.from_request(binlogdata.Filter(rules=[rule("/^cu"), rule("product")]))
    assert [t for t in ("customer", "corder", "product") if f.matches(t)] == [
        "customer",
        "product",
    ]
    assert TableFilter.from_request(None).matches("anything")
    ok = TableFilter.from_request(
        binlogdata.Filter(rules=[rule("corder", "select * from `corder`")])
    )
    assert ok.matches("corder") and not ok.matches("customer")
    for bad in (
        [rule("/([", "")],
        [rule("corder", "select order_id from corder")],
        [rule("corder", "select * from customer")],
    ):
        with pytest.raises(VStreamError):
            TableFilter.from_request(binlogdata.Filter(rules=bad))


def test_filter_rules_are_re2() -> None:
    # Go's regexp syntax as a vttablet reads it: \z is RE2's end of text.
    ends = TableFilter.from_request(binlogdata.Filter(rules=[binlogdata.Rule(match=r"/der\z")]))
    assert ends.matches("corder") and not ends.matches("orders")
    # A nested quantifier is matched in one pass: Python's re would take
    # ~2**40 steps to refuse this name.
    nested = TableFilter.from_request(binlogdata.Filter(rules=[binlogdata.Rule(match="/^(a+)+$")]))
    assert not nested.matches("a" * 40 + "!")
    assert nested.matches("a" * 40)


@pytest.mark.parametrize(
    ("match", "detail"),
    [
        (r"/(c)\1", r"invalid escape sequence: \1"),
        ("/c(?=o)", "invalid perl operator: (?="),
        ("/([", "missing ]: ["),
    ],
)
def test_filter_rules_re2_refuses(match: str, detail: str) -> None:
    with pytest.raises(VStreamError) as info:
        TableFilter.from_request(binlogdata.Filter(rules=[binlogdata.Rule(match=match)]))
    assert info.value.code == Code.INVALID_ARGUMENT
    assert info.value.message.startswith(
        f"filter rule {quote(match)} is not a valid regular expression: "
    )
    assert info.value.message.endswith(detail)


def test_routing_and_partitions() -> None:
    ranges = [(s, KeyRange.parse(s)) for s in ("-40", "40-80", "80-")]
    counts = {s: 0 for s, _ in ranges}
    for i in range(3000):
        key = (str(i).encode(),)
        shard = shard_for(key, ranges)
        assert dict(ranges)[shard].contains(keyspace_id(key))
        counts[shard] += 1
    assert min(counts.values()) > 500
    assert check_partition(["-80", "80-"]) is None
    assert check_partition(["0"]) is None
    assert "overlaps" in (check_partition(["-80", "70-"]) or "")
    assert "gap" in (check_partition(["-80", "90-"]) or "")
    assert "gap" in (check_partition(["-80"]) or "")


def test_same_seed_same_cluster() -> None:
    def run() -> tuple[list[str], dict[str, dict]]:  # type: ignore[type-arg]
        cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=42)
        cluster.apply_random_transactions(300)
        positions = [cluster.position("commerce", s) for s in ("-80", "80-")]
        return positions, cluster.table_contents("commerce")

    first, second = run(), run()
    assert first == second
    other = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=43)
    other.apply_random_transactions(300)
    assert other.table_contents("commerce") != first[1]
    contents = first[1]
    assert set(contents) == {"customer", "corder", "product"}
    key, row = next(iter(contents["customer"].items()))
    assert key == (row["customer_id"],) and set(row) == {"customer_id", "email", "created"}


async def test_run_workload_paces_with_trio_time(autojump_clock: object) -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1, ddl_probability=0)
    log = cluster.shard_log("commerce", "0")
    with trio.move_on_after(2.0):
        await cluster.run_workload(50)
    assert 95 <= log.last_seqno <= 101
    done = log.last_seqno
    await cluster.run_workload(1000, max_transactions=10)
    assert log.last_seqno == done + 10


def test_partial_cluster_keeps_only_its_key_range() -> None:
    cluster = SimulatedCluster.build({"commerce": ["-80"]}, seed=5, partial=True, first_uid=7)
    cluster.apply_random_transactions(200)
    tablet = cluster.tablet("commerce", "-80")
    assert tablet.alias == "zone1-0000000007"
    key_range = KeyRange.parse("-80")
    rows = [key for table in tablet.tables.values() for key in table]
    assert len(rows) > 50
    assert all(key_range.contains(keyspace_id(key)) for key in rows)
    with pytest.raises(ValueError, match="gap"):
        SimulatedCluster.build({"commerce": ["-80"]})
