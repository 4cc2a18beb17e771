"""Resume with the official-proto client, as a CDC client restarts from its offset.

The offset is a VGtid taken from the stream at the end of a unit and stored as
JSON (Debezium keeps it that way), then sent back. The checks compare with
the simulated cluster's own data: a strict :class:`Replica` fed with what the
client had received up to the offset plus everything after the resume must
end equal to the cluster's tables (no change lost, none applied twice), and
per shard the resumed stream carries exactly the GTIDs after the offset.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from tests.e2e.e2e_harness import open_stack
from tests.interop.official.official_checks import COPY_COMPLETED, assert_clean
from tests.interop.official.official_client import reading, vstream_request
from tests.interop.official.official_replay import (
    Replica,
    Unit,
    caught_up,
    flat_events,
    positions,
    seq_of,
    units,
)
from vsmux.sources._simulated.workload import Upsert

pytestmark = pytest.mark.clients

KS = "commerce"


def serving_positions(stack: Any) -> dict[str, str]:
    cluster = stack.cluster
    return {s: cluster.position(KS, s) for s in cluster.topology.serving_shards(KS)}


def copy_done(responses: list[Any]) -> bool:
    return any(e.type == COPY_COMPLETED and not e.shard for e in flat_events(responses))


def stored(official: Any, vgtid: Any) -> Any:
    """The VGtid after a round trip through JSON, as a client stores its offset."""
    text = json_format.MessageToJson(vgtid)
    return json_format.Parse(text, official.binlogdata.VGtid())


def streamed_seqs(responses: list[Any]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for unit in units(responses):
        if not unit.copying:
            out.setdefault(unit.shard, []).append(unit.seq)
    return out


def replayed(*event_lists: list[Any]) -> Replica:
    replica = Replica()
    for events in event_lists:
        replica.apply(events)
    return replica


def nonempty(contents: dict[str, Any]) -> dict[str, Any]:
    return {table: rows for table, rows in contents.items() if rows}


async def test_resume_from_a_vgtid_taken_mid_stream(official: Any) -> None:
    async with open_stack("grpc") as stack:
        stack.cluster.apply_random_transactions(40, KS)
        request = vstream_request(official, (KS, "", ""))
        async with reading(official, stack.port, request) as first:
            await first.wait_for(copy_done)
            stack.cluster.apply_random_transactions(60, KS)
            await first.wait_for(caught_up(lambda: serving_positions(stack)))
        streamed = [u for u in units(first.responses) if not u.copying]
        cut = streamed[len(streamed) // 2]
        offset = stored(official, cut.vgtid)
        stack.cluster.apply_random_transactions(60, KS)  # while the client is away
        resume = vstream_request(official, *offset.shard_gtids)
        async with reading(official, stack.port, resume) as second:
            await second.wait_for(caught_up(lambda: serving_positions(stack)))
        truth = stack.cluster.table_contents(KS)
        end = serving_positions(stack)
    assert_clean(official, first.responses)
    assert_clean(official, second.responses)
    replica = replayed(flat_events(first.responses)[: cut.end + 1], flat_events(second.responses))
    assert replica.problems == []
    assert replica.contents == nonempty(truth)
    saved = positions(offset)
    assert streamed_seqs(second.responses) == {
        shard: list(range(seq_of(saved[shard]) + 1, seq_of(end[shard]) + 1))
        for shard in end
        if seq_of(end[shard]) > seq_of(saved[shard])
    }


def _mid_customer(unit: Unit) -> bool:
    """A copy unit whose position has ``customer`` copied part way (a last key, not done).

    The table holds thousands of rows per shard and is copied in blocks of
    1000, so its first block's key is well inside the table.
    """
    return unit.copying and any(
        pk.table_name == "customer" and pk.lastpk.rows
        for sg in unit.vgtid.shard_gtids
        for pk in sg.table_p_ks
    )


async def test_resume_from_a_vgtid_taken_mid_copy(official: Any) -> None:
    """A VGtid with table_p_ks: the copy resumes after each table's last key."""
    customers = [
        Upsert(
            "customer",
            {
                "customer_id": str(i).encode(),
                "email": f"c{i}@example.com".encode(),
                "created": b"2024-02-29 12:00:00",
            },
        )
        for i in range(2_000_000, 2_004_500)
    ]
    async with open_stack("grpc") as stack:
        for first_row in range(0, len(customers), 500):
            stack.cluster.execute(KS, *customers[first_row : first_row + 500])
        stack.cluster.apply_random_transactions(30, KS)
        request = vstream_request(official, (KS, "", ""))
        async with reading(official, stack.port, request) as first:
            await first.wait_for(lambda rs: any(_mid_customer(u) for u in units(rs)))
        cut = next(u for u in units(first.responses) if _mid_customer(u))
        offset = stored(official, cut.vgtid)
        # Changes to rows both sides of every table's last copied key.
        stack.cluster.apply_random_transactions(80, KS)
        resume = vstream_request(official, *offset.shard_gtids)
        async with reading(official, stack.port, resume) as second:
            await second.wait_for(copy_done)
            await second.wait_for(caught_up(lambda: serving_positions(stack)))
        truth = stack.cluster.table_contents(KS)
    assert any(sg.table_p_ks for sg in offset.shard_gtids)
    assert_clean(official, first.responses[: _response_of(first.responses, cut) + 1])
    assert_clean(official, second.responses)
    replica = replayed(flat_events(first.responses)[: cut.end + 1], flat_events(second.responses))
    assert replica.problems == []
    assert replica.contents == nonempty(truth)
    assert len(replica.contents["customer"]) >= len(customers)
    last = [e for e in flat_events(second.responses) if e.type == COPY_COMPLETED]
    assert (last[-1].keyspace, last[-1].shard) == ("", "")


def _response_of(responses: list[Any], unit: Unit) -> int:
    """Index of the response holding the unit's last event."""
    seen = 0
    for i, response in enumerate(responses):
        seen += len(response.events)
        if unit.end < seen:
            return i
    raise AssertionError("unit not in these responses")


async def test_resume_across_a_reshard(official: Any) -> None:
    """An offset on -80/80- after -80 was split: -80 up to its journal, then the new shards."""
    async with open_stack("grpc") as stack:
        stack.cluster.apply_random_transactions(30, KS)
        request = vstream_request(official, (KS, "", ""))
        async with reading(official, stack.port, request) as first:
            await first.wait_for(copy_done)
            await first.wait_for(caught_up(lambda: serving_positions(stack)))
        cut = list(units(first.responses))[-1]
        offset = stored(official, cut.vgtid)
        stack.cluster.apply_random_transactions(20, KS)
        stack.reshard(KS, ["-40", "40-80", "80-"])
        stack.cluster.apply_random_transactions(40, KS)
        resume = vstream_request(official, *offset.shard_gtids)
        async with reading(official, stack.port, resume) as second:
            await second.wait_for(caught_up(lambda: serving_positions(stack)))
        truth = stack.cluster.table_contents(KS)
        end = serving_positions(stack)
        journal_seq = seq_of(stack.cluster.position(KS, "-80"))  # -80's last entry
    assert_clean(official, first.responses)
    assert_clean(official, second.responses)
    replica = replayed(flat_events(first.responses)[: cut.end + 1], flat_events(second.responses))
    assert replica.problems == []
    assert replica.contents == nonempty(truth)

    saved = positions(offset)
    seqs = streamed_seqs(second.responses)
    # -80 up to (not including) its journal, which is not forwarded by default.
    assert seqs.get("-80", []) == list(range(seq_of(saved["-80"]) + 1, journal_seq))
    assert seqs.get("80-", []) == list(range(seq_of(saved["80-"]) + 1, seq_of(end["80-"]) + 1))
    for shard in ("-40", "40-80"):
        # A new shard starts at <uuid>:1 (its copied rows); its transactions follow.
        assert seqs.get(shard, []) == list(range(2, seq_of(end[shard]) + 1)), shard
