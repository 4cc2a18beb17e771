"""The official-proto client streams from the gateway: framing, atomicity, order.

Every test reads through grpcio with the classes generated from Vitess's own
protos, from ``open_stack("grpc")`` (the gateway on a loopback gRPC port, the
simulated tablets each behind their own gRPC server), and runs every check
of :mod:`official_checks` on everything it received.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.e2e_harness import open_stack
from tests.interop.official.official_checks import (
    BEGIN,
    COMMIT,
    COPY_COMPLETED,
    DDL,
    HEARTBEAT,
    JOURNAL,
    OTHER,
    ROW,
    VGTID,
    assert_clean,
)
from tests.interop.official.official_client import reading, vstream_request
from tests.interop.official.official_replay import (
    Replica,
    caught_up,
    decode_row,
    flat_events,
    positions,
    seq_of,
    units,
)
from vsmux.core.settings import GatewaySettings
from vsmux.sources._simulated.workload import Alter, Upsert

pytestmark = pytest.mark.clients

KS = "commerce"


def serving_positions(stack: Any) -> dict[str, str]:
    cluster = stack.cluster
    return {s: cluster.position(KS, s) for s in cluster.topology.serving_shards(KS)}


def kinds(response: Any) -> list[int]:
    return [e.type for e in response.events]


async def test_current_start_with_ddl_other_and_heartbeats(official: Any) -> None:
    """``current``: a [VGTID, OTHER] per shard at its position, then exactly what follows."""
    flags = official.vtgate.VStreamFlags(heartbeat_interval=1)
    request = vstream_request(official, (KS, "", "current"), flags=flags)
    # Static auth as Debezium sends it when configured; the gateway ignores it.
    auth = (("username", "cdc"), ("password", "secret"))
    async with open_stack("grpc") as stack:
        stack.cluster.apply_random_transactions(10, KS)
        start = serving_positions(stack)
        async with reading(official, stack.port, request, metadata=auth) as reader:
            await reader.wait_for(lambda rs: len(rs) >= 2)
            stack.cluster.execute(KS, Alter("customer", "email", 192))
            stack.cluster.commit_other(KS, "80-")
            stack.cluster.apply_random_transactions(60, KS)
            await reader.wait_for(caught_up(lambda: serving_positions(stack)))
            # Idle now: within a heartbeat interval or two a [HEARTBEAT] arrives.
            await reader.wait_for(lambda rs: HEARTBEAT in kinds(rs[-1]), timeout=5)
        end = serving_positions(stack)
    responses = reader.responses
    assert reader.error is None
    assert_clean(official, responses)

    first = responses[:2]
    assert [kinds(r) for r in first] == [[VGTID, OTHER], [VGTID, OTHER]]
    assert sorted(r.events[0].shard for r in first) == ["-80", "80-"]
    for response in first:
        shard = response.events[0].shard
        assert positions(response.events[0].vgtid)[shard] == start[shard]
    # Exactly the transactions (and the DDL and OTHER) committed after `current`.
    streamed: dict[str, list[int]] = {}
    for unit in units(responses[2:]):
        streamed.setdefault(unit.shard, []).append(unit.seq)
    assert streamed == {
        shard: list(range(seq_of(start[shard]) + 1, seq_of(end[shard]) + 1)) for shard in end
    }
    ddl_units = [u.shard for u in units(responses) if u.kind == DDL]
    assert sorted(ddl_units) == ["-80", "80-"]
    heartbeat = responses[-1].events[0]
    assert (heartbeat.keyspace, heartbeat.shard) == ("", "")
    assert heartbeat.timestamp > 0 and heartbeat.current_time > 0


async def test_copy_then_stream(official: Any) -> None:
    """``""``: every table copied, one COPY_COMPLETED per shard and one for all, then the stream."""
    request = vstream_request(official, (KS, "", ""))
    async with open_stack("grpc") as stack:
        stack.cluster.apply_random_transactions(80, KS)
        async with reading(official, stack.port, request) as reader:
            await reader.wait_for(
                lambda rs: any(e.type == COPY_COMPLETED and not e.shard for e in flat_events(rs))
            )
            stack.cluster.apply_random_transactions(40, KS)
            await reader.wait_for(caught_up(lambda: serving_positions(stack)))
        truth = stack.cluster.table_contents(KS)
        end = serving_positions(stack)
    responses = reader.responses
    assert_clean(official, responses)

    replica = Replica()
    replica.apply(flat_events(responses))
    assert replica.problems == []
    assert replica.contents == {t: rows for t, rows in truth.items() if rows}

    completed = [(e.keyspace, e.shard) for e in flat_events(responses) if e.type == COPY_COMPLETED]
    assert sorted(completed) == [("", ""), (KS, "-80"), (KS, "80-")]
    assert completed[-1] == ("", "")
    # After its copy each shard streams from the snapshot on: every GTID once.
    all_units = list(units(responses))
    for shard in end:
        snapshot = [u.seq for u in all_units if u.shard == shard and u.copying][-1]
        after = [u.seq for u in all_units if u.shard == shard and not u.copying]
        assert after == list(range(snapshot + 1, seq_of(end[shard]) + 1)), shard


async def test_a_large_transaction_continues_over_consecutive_responses(official: Any) -> None:
    """A unit over the response limit is split, and nothing else comes in between."""
    limit = 16 * 1024
    settings = GatewaySettings(
        max_response_bytes=limit, retry_backoff_initial=0.01, retry_backoff_max=0.05
    )
    ids = range(1_000_000, 1_003_000)
    big = [
        Upsert("customer", {"customer_id": str(i).encode(), "email": f"c{i}@example.com".encode()})
        for i in ids
    ]
    request = vstream_request(official, (KS, "", "current"))
    async with (
        open_stack("grpc", settings=settings) as stack,
        reading(official, stack.port, request) as reader,
    ):
        await reader.wait_for(lambda rs: len(rs) >= 2)
        stack.cluster.apply_random_transactions(5, KS)
        # One transaction over both shards: two big units, committed at once.
        stack.cluster.execute(KS, *big)
        stack.cluster.apply_random_transactions(5, KS)
        await reader.wait_for(caught_up(lambda: serving_positions(stack)))
    responses = reader.responses
    assert_clean(official, responses)
    assert max(r.ByteSize() for r in responses) <= limit

    # The big transaction's two units (one per shard) each span several
    # consecutive responses, and between them they insert exactly its rows.
    spans: list[tuple[int, int]] = []  # (responses, customer rows) per transaction
    begun, rows = 0, 0
    big_ids: list[int] = []
    for i, response in enumerate(responses):
        if kinds(response)[0] == BEGIN:
            begun, rows = i, 0
        for event in response.events:
            if event.type == ROW and event.row_event.table_name == f"{KS}.customer":
                for change in event.row_event.row_changes:
                    customer_id = int(decode_row(change.after)[0] or b"0")
                    rows += 1
                    if customer_id in ids:
                        big_ids.append(customer_id)
        if kinds(response)[-1] == COMMIT:
            spans.append((i - begun + 1, rows))
    assert sorted(big_ids) == list(ids)
    big_units = sorted(spans, key=lambda s: s[1])[-2:]
    assert sum(r for _, r in big_units) == len(ids)
    assert all(n >= 3 for n, _ in big_units), big_units


async def test_a_transaction_over_4_mib_reaches_a_default_client(official: Any) -> None:
    """grpcio's default 4 MiB inbound limit (Debezium's too) is never hit: the unit is split."""
    # ~5 MB of product rows (their binary_md5 vindex keeps the insert quick).
    count = 20_000
    wide = [
        Upsert(
            "product",
            {"sku": f"sku-{i}".encode(), "description": b"d" * 250, "price": b"12.50"},
        )
        for i in range(count)
    ]
    request = vstream_request(official, (KS, "-80", "current"), (KS, "80-", "current"))
    async with open_stack("grpc") as stack, reading(official, stack.port, request) as reader:
        await reader.wait_for(lambda rs: len(rs) >= 2)
        stack.cluster.execute(KS, *wide)
        await reader.wait_for(caught_up(lambda: serving_positions(stack)), timeout=30)
    responses = reader.responses
    assert reader.error is None
    assert_clean(official, responses)
    rows = sum(len(e.row_event.row_changes) for e in flat_events(responses) if e.type == ROW)
    assert rows == count
    assert sum(r.ByteSize() for r in responses) > 4 * 1024 * 1024
    assert max(r.ByteSize() for r in responses) < 4 * 1024 * 1024


async def test_stop_on_reshard_sends_whole_journal_transactions_then_ends(official: Any) -> None:
    """Each old shard's [BEGIN, JOURNAL, VGTID, COMMIT] as its own unit, then an OK end."""
    flags = official.vtgate.VStreamFlags(stop_on_reshard=True)
    request = vstream_request(official, (KS, "", "current"), flags=flags)
    async with open_stack("grpc") as stack, reading(official, stack.port, request) as reader:
        await reader.wait_for(lambda rs: len(rs) >= 2)
        stack.cluster.apply_random_transactions(10, KS)
        await reader.wait_for(caught_up(lambda: serving_positions(stack)))
        stack.reshard(KS, ["-40", "40-80", "80-"])
        await reader.wait_ended()
    responses = reader.responses
    assert reader.error is None, reader.error
    assert_clean(official, responses, ended_by_server=True)
    journals = [r for r in responses if JOURNAL in kinds(r)]
    assert [kinds(r) for r in journals] == [[BEGIN, JOURNAL, VGTID, COMMIT]]
    assert journals[0].events[1].shard == "-80"
    assert journals[0] is responses[-1]
