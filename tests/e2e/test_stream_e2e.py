"""grpclib client -> vsmux -> simulated tablets (in-process or over gRPC)."""

from __future__ import annotations

import trio

from tests.e2e.e2e_harness import (
    Reader,
    T,
    caught_up,
    commits,
    events,
    gtid_seqs,
    last_vgtid,
    open_stack,
    request_for,
    seq_of,
)
from vsmux.errors import Code
from vsmux.proto import binlogdata, topodata, vtgate, vtrpc


async def test_multi_shard_stream(mode: str) -> None:
    async with open_stack(mode) as stack, trio.open_nursery() as nursery:
        reader = Reader(stack.port, request_for(("commerce", "", "current")))
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        stack.cluster.apply_random_transactions(30)
        responses = await reader.wait_for(lambda rs: commits(rs) >= 30)
        reader.stop()
    shards = {e.shard for e in events(responses) if e.type == T.ROW}
    assert shards == {"-80", "80-"}
    # Transactions are whole and never interleave: BEGIN ... COMMIT, one at a time.
    open_tx = None
    for event in events(responses):
        if event.type == T.BEGIN:
            assert open_tx is None
            open_tx = event.shard
        elif event.type == T.ROW:
            assert open_tx == event.shard
            assert event.row_event is not None
            assert event.row_event.table_name.startswith("commerce.")
        elif event.type == T.COMMIT:
            assert open_tx is not None
            open_tx = None
    vgtid = last_vgtid(responses)
    assert sorted(sg.shard for sg in vgtid.shard_gtids) == ["-80", "80-"]
    assert stack.gateway.metrics.gateway["active_sessions"] == 0


def assert_contiguous(seqs: dict[str, list[int]], start: dict[str, int] | None = None) -> None:
    """Each shard's transactions arrive once each, in order, with no gap."""
    for shard, values in seqs.items():
        first = values[0] if start is None else start[shard] + 1
        assert values == list(range(first, first + len(values))), shard


async def test_resume_from_a_vgtid(mode: str) -> None:
    async with open_stack(mode) as stack:
        async with trio.open_nursery() as nursery:
            first = Reader(stack.port, request_for(("commerce", "", "current")))
            nursery.start_soon(first.run)
            await first.wait_for(lambda rs: len(rs) >= 1)
            stack.cluster.apply_random_transactions(10)
            await first.wait_for(caught_up(stack))
            first.stop()
        saved = last_vgtid(first.responses)
        stack.cluster.apply_random_transactions(10)  # while nobody streams
        resume = request_for(*[(sg.keyspace, sg.shard, sg.gtid) for sg in saved.shard_gtids])
        async with trio.open_nursery() as nursery:
            second = Reader(stack.port, resume)
            nursery.start_soon(second.run)
            await second.wait_for(caught_up(stack))
            second.stop()
    start = {sg.shard: seq_of(sg.gtid) for sg in saved.shard_gtids}
    seqs = gtid_seqs(second.responses, start)
    assert seqs, "nothing was streamed after the resume point"
    assert_contiguous(seqs, start)


async def test_copy_phase_then_stream(mode: str) -> None:
    async with open_stack(mode) as stack:
        stack.cluster.apply_random_transactions(40)
        truth = stack.cluster.table_contents("commerce")
        async with trio.open_nursery() as nursery:
            reader = Reader(stack.port, request_for(("commerce", "", "")))
            nursery.start_soon(reader.run)

            def copied(rs: list[object]) -> bool:
                return any(
                    e.type == T.COPY_COMPLETED and not e.keyspace for e in events(reader.responses)
                )

            responses = await reader.wait_for(copied)
            stack.cluster.apply_random_transactions(5)
            await reader.wait_for(caught_up(stack))
            reader.stop()
    copy_end = next(
        i for i, e in enumerate(events(responses)) if e.type == T.COPY_COMPLETED and not e.keyspace
    )
    copied_rows: dict[str, int] = {}
    for event in list(events(responses))[:copy_end]:
        if event.type == T.ROW and event.row_event is not None:
            table = event.row_event.table_name.split(".", 1)[1]
            copied_rows[table] = copied_rows.get(table, 0) + len(event.row_event.row_changes)
    assert copied_rows == {t: len(rows) for t, rows in truth.items() if rows}
    per_shard_done = [
        e.shard for e in events(responses) if e.type == T.COPY_COMPLETED and e.keyspace
    ]
    assert sorted(per_shard_done) == ["-80", "80-"]


async def test_reshard_moves_the_stream_to_the_new_shards(mode: str) -> None:
    async with open_stack(mode) as stack, trio.open_nursery() as nursery:
        reader = Reader(stack.port, request_for(("commerce", "", "current")))
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        stack.cluster.apply_random_transactions(5)
        await reader.wait_for(caught_up(stack))
        stack.reshard("commerce", ["-40", "40-80", "80-"])
        stack.cluster.apply_random_transactions(20)
        responses = await reader.wait_for(caught_up(stack))
        reader.stop()
    final = last_vgtid(responses)
    assert sorted(sg.shard for sg in final.shard_gtids) == ["-40", "40-80", "80-"]
    row_shards = [e.shard for e in events(responses) if e.type == T.ROW]
    after = row_shards[len(row_shards) - 10 :]
    assert "-80" not in after
    assert {"-40", "40-80"} & set(row_shards)


async def test_stop_on_reshard_sends_each_journal_transaction_and_ends_ok(mode: str) -> None:
    flags = vtgate.VStreamFlags(stop_on_reshard=True)
    async with open_stack(mode) as stack, trio.open_nursery() as nursery:
        reader = Reader(stack.port, request_for(("commerce", "", "current"), flags=flags))
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        stack.cluster.apply_random_transactions(5)
        await reader.wait_for(caught_up(stack))
        stack.reshard("commerce", ["-40", "40-80", "80-"])
        with trio.fail_after(10):
            await reader.ended.wait()
    assert reader.error is None  # ended with OK, as vtgate does
    journals = [r for r in reader.responses if any(e.type == T.JOURNAL for e in r.events)]
    # -80 splits (80- stays): its journal's whole transaction in one response, last.
    assert [[e.type for e in r.events] for r in journals] == [
        [T.BEGIN, T.JOURNAL, T.VGTID, T.COMMIT]
    ]
    assert journals[0].events[0].shard == "-80"
    assert reader.responses[-1:] == journals


async def test_tablet_failure_is_retried_without_loss_or_duplicates(mode: str) -> None:
    async with open_stack(mode) as stack, trio.open_nursery() as nursery:
        reader = Reader(stack.port, request_for(("commerce", "", "current")))
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        stack.cluster.apply_random_transactions(5)
        await reader.wait_for(caught_up(stack))
        stack.cluster.tablet("commerce", "-80").faults.fail_after(
            3, Code.UNAVAILABLE, "simulated outage", mid_transaction=True
        )
        stack.cluster.apply_random_transactions(20)
        responses = await reader.wait_for(caught_up(stack))
        reader.stop()
    assert reader.error is None
    failed = stack.cluster.tablet("commerce", "-80").alias
    assert stack.directory.opened[failed] == 2  # the shard stream was restarted once
    assert_contiguous(gtid_seqs(responses))


async def test_tablets_receive_the_request_as_the_mux_built_it() -> None:
    """Over gRPC, the tablet request arrives field for field (docs/vitess.md section 2)."""
    flags = vtgate.VStreamFlags(stream_keyspace_heartbeats=True, tables_to_copy=["customer"])
    request = request_for(("commerce", "-80", "current"), flags=flags)
    request.filter = binlogdata.Filter(rules=[binlogdata.Rule(match="customer")])
    async with open_stack("grpc") as stack, trio.open_nursery() as nursery:
        reader = Reader(stack.port, request)
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        reader.stop()
    [sent] = stack.tablet_requests
    assert sent.target is not None
    assert (sent.target.keyspace, sent.target.shard) == ("commerce", "-80")
    assert sent.target.tablet_type == topodata.TabletType.PRIMARY
    assert sent.target.cell == "zone1"
    assert sent.position == "current"
    assert sent.filter is not None
    assert [r.match for r in sent.filter.rules] == ["customer"]
    assert sent.options is not None
    assert sent.options.internal_tables == ["heartbeat"]
    assert sent.options.tables_to_copy == ["customer"]


async def test_tablets_receive_the_callers_identity() -> None:
    request = request_for(("commerce", "-80", "current"))
    request.caller_id = vtrpc.CallerId(principal="debezium", component="cdc")
    async with open_stack("grpc") as stack, trio.open_nursery() as nursery:
        reader = Reader(stack.port, request)
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        reader.stop()
    [sent] = stack.tablet_requests
    assert sent.effective_caller_id is not None
    assert sent.effective_caller_id.principal == "debezium"
    assert sent.immediate_caller_id is not None
    assert sent.immediate_caller_id.username == "vsmux"
