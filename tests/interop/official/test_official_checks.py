"""The checkers themselves, on hand-built streams: they pass vtgate's shapes and
catch the violations they exist for (so a green gateway test means something)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.official.official_checks import (
    BEGIN,
    COMMIT,
    COPY_COMPLETED,
    DDL,
    FIELD,
    HEARTBEAT,
    JOURNAL,
    OTHER,
    ROLLBACK,
    ROW,
    VGTID,
    framing_violations,
    unit_violations,
    unknown_field_violations,
)
from tests.interop.official.official_replay import Replica, decode_row, seq_of, units

pytestmark = pytest.mark.clients


class Build:
    """Responses and events built with the official classes."""

    def __init__(self, official: Any) -> None:
        self.b = official.binlogdata
        self.q = official.query
        self.vtgate = official.vtgate

    def event(self, kind: int, shard: str = "-80", seq: int = 1, table: str = "t") -> Any:
        b = self.b
        ks = "commerce" if shard else ""
        event = b.VEvent(type=kind, keyspace=ks, shard=shard)
        if kind == VGTID:
            gtid = f"MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-{seq}"
            event.vgtid.CopyFrom(
                b.VGtid(shard_gtids=[b.ShardGtid(keyspace=ks, shard=shard, gtid=gtid)])
            )
        elif kind == FIELD:
            event.field_event.CopyFrom(
                b.FieldEvent(
                    table_name=f"{ks}.{table}",
                    keyspace=ks,
                    shard=shard,
                    fields=[self.q.Field(name="id", type=self.q.INT64, flags=2)],
                )
            )
        elif kind == ROW:
            row = self.q.Row(lengths=[len(str(seq))], values=str(seq).encode())
            event.row_event.CopyFrom(
                b.RowEvent(
                    table_name=f"{ks}.{table}",
                    keyspace=ks,
                    shard=shard,
                    row_changes=[b.RowChange(after=row)],
                )
            )
        return event

    def response(self, *kinds: int, shard: str = "-80", seq: int = 1) -> Any:
        events = [self.event(k, shard, seq) for k in kinds]
        return self.vtgate.VStreamResponse(events=events)

    def tx(self, shard: str = "-80", seq: int = 1, field: bool = True) -> Any:
        kinds = [BEGIN, FIELD, ROW, VGTID, COMMIT] if field else [BEGIN, ROW, VGTID, COMMIT]
        return self.response(*kinds, shard=shard, seq=seq)


@pytest.fixture
def build(official: Any) -> Build:
    return Build(official)


def test_event_numbers_match_the_official_enum(official: Any) -> None:
    names = {
        "BEGIN": BEGIN,
        "COMMIT": COMMIT,
        "ROLLBACK": ROLLBACK,
        "DDL": DDL,
        "OTHER": OTHER,
        "ROW": ROW,
        "FIELD": FIELD,
        "HEARTBEAT": HEARTBEAT,
        "VGTID": VGTID,
        "JOURNAL": JOURNAL,
        "COPY_COMPLETED": COPY_COMPLETED,
    }
    assert {n: official.binlogdata.VEventType.Value(n) for n in names} == names


def test_vtgate_shaped_stream_passes(build: Build) -> None:
    stream = [
        build.response(VGTID, OTHER),  # the first unit of a `current` start
        build.response(BEGIN, VGTID, VGTID, VGTID, COMMIT),  # a copy's position unit
        build.tx(seq=2),
        build.response(VGTID, DDL, seq=3),
        build.response(HEARTBEAT, shard=""),
        build.response(BEGIN, FIELD, ROW, shard="80-"),  # one unit over three responses
        build.response(ROW, shard="80-"),
        build.response(ROW, VGTID, COMMIT, shard="80-"),
        build.response(COPY_COMPLETED),
        build.vtgate.VStreamResponse(
            events=[build.event(COPY_COMPLETED, "80-"), build.event(COPY_COMPLETED, "")]
        ),
        build.tx(shard="80-", seq=4, field=False),
    ]
    assert framing_violations(stream, ended_by_server=True) == []
    assert unit_violations(stream) == []


def test_two_transactions_in_one_response_are_caught(build: Build) -> None:
    packed = build.vtgate.VStreamResponse(
        events=[*build.tx(seq=1).events, *build.tx(shard="80-", seq=1).events]
    )
    problems = framing_violations([packed])
    assert any("2 terminators" in p for p in problems), problems
    assert any("2 VGTIDs" in p for p in problems), problems
    assert any("BEGIN at position [5]" in p for p in problems), problems
    assert unit_violations([packed]) == []  # whole transactions, only packed together


def test_other_units_sharing_a_response_are_caught(build: Build) -> None:
    cases = [
        build.response(VGTID, DDL, VGTID, OTHER),
        build.response(HEARTBEAT, BEGIN, ROW, VGTID, COMMIT),
        build.response(BEGIN, ROW, VGTID, COMMIT, COPY_COMPLETED),
        build.response(BEGIN, VGTID, COMMIT, HEARTBEAT),
    ]
    for response in cases:
        assert framing_violations([response]), response


def test_a_unit_interrupted_across_responses_is_caught(build: Build) -> None:
    stream = [
        build.response(BEGIN, FIELD, ROW),
        build.tx(shard="80-"),
        build.response(ROW, VGTID, COMMIT),
    ]
    problems = framing_violations(stream)
    assert any("still open" in p for p in problems), problems
    assert any("interleaved" in p or "inside the open" in p for p in unit_violations(stream))


def test_a_journal_without_its_commit_is_caught_at_the_end(build: Build) -> None:
    # [BEGIN, JOURNAL] and the stream ends: Debezium's "duplicate BEGIN" case.
    stream = [build.response(BEGIN, JOURNAL), build.response(BEGIN, JOURNAL, shard="80-")]
    problems = framing_violations(stream, ended_by_server=True)
    assert any("still open" in p for p in problems), problems
    assert any("ended inside" in p for p in problems), problems
    whole = [build.response(BEGIN, JOURNAL, VGTID, COMMIT)]
    assert framing_violations(whole, ended_by_server=True) == []


def test_unit_rules_are_caught(build: Build) -> None:
    no_vgtid = build.response(BEGIN, FIELD, ROW, COMMIT)
    assert any("no VGTID" in p for p in unit_violations([no_vgtid]))
    row_first = build.response(BEGIN, ROW, VGTID, COMMIT)
    assert any("before any FIELD" in p for p in unit_violations([row_first]))
    bare = build.tx()
    bare.events[1].field_event.table_name = "t"
    assert any("not commerce.<table>" in p for p in unit_violations([bare]))
    assert unit_violations([build.tx()], exclude_keyspace=True)  # prefixed, but bare wanted
    ddl_inside = build.response(BEGIN, ROW, DDL)
    assert any("inside the open transaction" in p for p in unit_violations([ddl_inside]))


def test_replica_is_strict(build: Build) -> None:
    replica = Replica()
    replica.apply(build.tx(seq=7).events)
    assert replica.contents == {"t": {(b"7",): {"id": b"7"}}}
    assert replica.problems == []
    replica.apply(build.tx(seq=7, field=False).events)  # the same insert again
    assert any("inserted twice" in p for p in replica.problems)


def test_row_and_position_helpers(build: Build) -> None:
    row = build.q.Row(lengths=[1, -1, 0, 2], values=b"abc")
    assert decode_row(row) == [b"a", None, b"", b"bc"]
    assert seq_of("MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-30") == 30
    assert seq_of("MySQL56/") == 0
    found = list(units([build.tx(seq=5), build.response(VGTID, DDL, seq=6)]))
    assert [(u.shard, u.kind, u.seq) for u in found] == [("-80", COMMIT, 5), ("-80", DDL, 6)]


def test_unknown_fields_are_reported(build: Build, official: Any) -> None:
    known = frozenset(official.binlogdata.VEventType.values())
    assert unknown_field_violations([build.tx()], known) == []
    # VEvent.event_gtid (28) is newer than the vendored protos: kept as unknown.
    event = official.binlogdata.VEvent(type=BEGIN)
    event.MergeFromString(b"\xe2\x01\x03abc")  # field 28, length-delimited
    unknown = build.vtgate.VStreamResponse(events=[event])
    assert unknown_field_violations([unknown], known) == [
        "response #0: unknown field numbers ['binlogdata.VEvent.28']"
    ]
