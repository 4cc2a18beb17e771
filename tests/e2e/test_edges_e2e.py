"""Errors, cancellation, Execute and response sizes, end to end over loopback gRPC."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from grpclib.const import Status

from tests.e2e.e2e_harness import Reader, T, caught_up, events, open_stack, request_for, task_count
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code
from vsmux.proto import query, vtgate, vtgateservice, vtrpc


@pytest.mark.parametrize(
    ("shard_gtids", "status", "words"),
    [
        ((), Status.INVALID_ARGUMENT, "vgtid must have at least one value"),
        ((("nope", "", "current"),), Status.NOT_FOUND, "keyspace nope not found"),
        ((("commerce", "-40", "current"),), Status.NOT_FOUND, "shard commerce/-40 not found"),
        ((("commerce", "", "MySQL56/x:1-3"),), Status.INVALID_ARGUMENT, "must be 'current'"),
        ((("/([", "", "current"),), Status.INVALID_ARGUMENT, "failed to compile regexp"),
    ],
)
async def test_bad_requests_get_their_status(
    mode: str, shard_gtids: tuple[tuple[str, str, str], ...], status: Status, words: str
) -> None:
    async with open_stack(mode) as stack:
        reader = Reader(stack.port, request_for(*shard_gtids))
        with trio.fail_after(10):
            await reader.run()
    assert reader.error is not None
    assert reader.error.status == status
    assert words in (reader.error.message or "")
    assert (reader.error.message or "").startswith("failed to resolve vstream parameters: ")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (Code.PERMISSION_DENIED, Status.PERMISSION_DENIED),
        (Code.INVALID_ARGUMENT, Status.INVALID_ARGUMENT),
        (Code.INTERNAL, Status.INTERNAL),
    ],
)
async def test_fatal_tablet_errors_reach_the_client_naming_the_tablet(
    mode: str, code: Code, status: Status
) -> None:
    async with open_stack(mode) as stack, trio.open_nursery() as nursery:
        reader = Reader(stack.port, request_for(("commerce", "", "current")))
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        tablet = stack.cluster.tablet("commerce", "80-")
        tablet.faults.fail_after(0, code, "tablet says no")
        stack.cluster.apply_random_transactions(10)
        with trio.fail_after(10):
            await reader.ended.wait()
    assert reader.error is not None
    assert reader.error.status == status
    message = reader.error.message or ""
    assert tablet.alias in message and "tablet says no" in message


async def test_persistent_unavailable_gives_up_after_three_attempts(mode: str) -> None:
    async with open_stack(mode) as stack, trio.open_nursery() as nursery:
        reader = Reader(stack.port, request_for(("commerce", "-80", "current")))
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        tablet = stack.cluster.tablet("commerce", "-80")
        tablet.faults.fail_after(0, Code.UNAVAILABLE, "still down", once=False)
        stack.cluster.apply_random_transactions(10)
        with trio.fail_after(10):
            await reader.ended.wait()
    assert reader.error is not None
    assert reader.error.status == Status.UNAVAILABLE
    assert "giving up" in (reader.error.message or "")


async def test_client_cancel_leaves_no_task_behind(mode: str) -> None:
    async with open_stack(mode) as stack:
        await trio.testing.wait_all_tasks_blocked()
        baseline = task_count()
        async with trio.open_nursery() as nursery:
            reader = Reader(stack.port, request_for(("commerce", "", "current")))
            nursery.start_soon(reader.run)
            await reader.wait_for(lambda rs: len(rs) >= 1)
            stack.cluster.apply_random_transactions(5)
            await reader.wait_for(caught_up(stack))
            assert stack.gateway.metrics.gateway["active_sessions"] == 1
            assert task_count() > baseline
            reader.stop()
        # The server sees the reset and cancels the session; wait for the dust.
        with trio.fail_after(10):
            while stack.gateway.metrics.gateway["active_sessions"] or task_count() > baseline:
                await trio.testing.wait_all_tasks_blocked()
                await trio.sleep(0.01)  # a real socket needs real time to see the reset
        assert stack.gateway.metrics.total("VStreamsCount") == 0


async def _execute(port: int, sql: str, target: str = "") -> vtgate.ExecuteResponse:
    import trio_asyncio
    from grpclib.client import Channel

    async def call() -> vtgate.ExecuteResponse:
        channel = Channel("127.0.0.1", port)
        try:
            request = vtgate.ExecuteRequest(
                session=vtgate.Session(target_string=target), query=query.BoundQuery(sql=sql)
            )
            response: vtgate.ExecuteResponse = await vtgateservice.VitessStub(channel).execute(
                request
            )
            return response
        finally:
            channel.close()

    result: vtgate.ExecuteResponse = await trio_asyncio.aio_as_trio(call)()
    return result


def _column(response: vtgate.ExecuteResponse) -> list[str]:
    assert response.error is None, response.error
    assert response.result is not None
    assert len(response.result.fields) >= 1
    out = []
    for row in response.result.rows:
        out.append(row.values[: row.lengths[0]].decode())
    return out


async def test_execute_metadata_queries(mode: str) -> None:
    prefix = "/*vt+ WORKLOAD_NAME=debezium */ "
    async with open_stack(mode) as stack:
        port = stack.port
        assert _column(await _execute(port, prefix + "SHOW DATABASES")) == ["commerce"]
        assert _column(await _execute(port, prefix + "SHOW VITESS_SHARDS LIKE 'commerce/%'")) == [
            "commerce/-80",
            "commerce/80-",
        ]
        tables = _column(await _execute(port, prefix + "SHOW TABLES FROM `commerce`;"))
        assert tables == ["corder", "customer", "product"]
        assert _column(await _execute(port, "show tables", target="commerce:-80@primary")) == tables
        tablets = await _execute(port, "SHOW VITESS_TABLETS")
        assert tablets.result is not None and len(tablets.result.rows) == 2
        other = await _execute(port, "SELECT * FROM customer")
    assert other.error is not None
    assert other.error.code == vtrpc.Code.UNIMPLEMENTED
    assert other.error.message == "vsmux only answers metadata queries: 'SELECT * FROM customer'"


async def test_large_transactions_are_split_across_consecutive_responses(mode: str) -> None:
    limit = 1024  # smaller than one shard's part of a large transaction
    settings = GatewaySettings(
        max_response_bytes=limit, retry_backoff_initial=0.01, retry_backoff_max=0.05
    )
    async with (
        open_stack(mode, settings=settings, large_probability=1.0, large_rows=(60, 90)) as stack,
        trio.open_nursery() as nursery,
    ):
        reader = Reader(stack.port, request_for(("commerce", "", "current")))
        nursery.start_soon(reader.run)
        await reader.wait_for(lambda rs: len(rs) >= 1)
        stack.cluster.apply_random_transactions(3)
        responses = await reader.wait_for(caught_up(stack))
        reader.stop()
    # Within the limit, but for an event too large for it, which goes alone.
    assert all(len(bytes(r)) <= limit or len(r.events) == 1 for r in responses)
    # Some transaction spans several responses, and nothing else comes between.
    spans = []
    current: list[int] | None = None
    for index, response in enumerate(responses):
        for event in response.events:
            if event.type == T.BEGIN:
                assert current is None
                current = [index]
            elif event.type == T.COMMIT:
                assert current is not None
                spans.append((current[0], index))
                current = None
            elif current is not None:
                assert event.type in (T.ROW, T.FIELD, T.VGTID), event.type
    assert any(end > start for start, end in spans)
    assert len(list(events(responses))) > 0
