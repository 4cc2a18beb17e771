"""The gateway endpoint over real loopback gRPC, with a stand-in multiplexer.

The multiplexer is replaced by small ``run_vstream`` functions so that these
tests pin down the edge alone: status mapping, cancellation, shutdown,
Execute, health and reflection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpclib.reflection.v1.reflection_grpc import ServerReflectionStub
from grpclib.reflection.v1.reflection_pb2 import ServerReflectionRequest

from tests.server.gw_helpers import execute, in_asyncio, small_topology, vstream
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import Gateway, SendResponses
from vsmux.proto import binlogdata, vtgate
from vsmux.server import gateway as gateway_module
from vsmux.server.app import open_gateway_server
from vsmux.server.gateway import ACTIVE_SESSIONS
from vsmux.server.tables import StaticTableCatalog

Run = Callable[[vtgate.VStreamRequest, Gateway, SendResponses], Awaitable[None]]


def body(*types: int) -> bytes:
    return bytes(vtgate.VStreamResponse(events=[binlogdata.VEvent(type=t) for t in types]))


class Directory:
    def source_for(self, tablet: object) -> object:
        raise AssertionError("the stand-in multiplexer never asks for sources")


def make_gateway() -> Gateway:
    return Gateway(small_topology(), Directory())  # type: ignore[arg-type]


@pytest.fixture
def gateway() -> Gateway:
    return make_gateway()


def serve(gateway: Gateway, run: Run) -> object:
    return open_gateway_server(gateway, run, StaticTableCatalog({"commerce": ["product"]}))


async def test_responses_arrive_in_order_then_ok(aio_loop: None, gateway: Gateway) -> None:
    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        assert request.vgtid is not None
        assert request.vgtid.shard_gtids[0].keyspace == "commerce"
        await send([body(15, 11), body(2, 13)])
        await send([body(12, 3)])

    request = vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace="commerce", gtid="current")]
        )
    )
    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        responses = await vstream(srv.port, request)
    assert [[e.type for e in r.events] for r in responses] == [[15, 11], [2, 13], [12, 3]]
    assert gateway.metrics.gateway["responses_sent"] == 3
    assert gateway.metrics.gateway[ACTIVE_SESSIONS] == 0


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (Code.INVALID_ARGUMENT, Status.INVALID_ARGUMENT),
        (Code.NOT_FOUND, Status.NOT_FOUND),
        (Code.FAILED_PRECONDITION, Status.FAILED_PRECONDITION),
        (Code.UNAVAILABLE, Status.UNAVAILABLE),
        (Code.CANCELED, Status.CANCELLED),
        (Code.INTERNAL, Status.INTERNAL),
        (Code.CLUSTER_EVENT, Status.UNAVAILABLE),
    ],
)
async def test_errors_become_statuses_with_the_same_code(
    aio_loop: None, gateway: Gateway, code: Code, status: Status
) -> None:
    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        await send([body(15)])
        raise VStreamError(code, "keyspace commerce shard -80: something specific")

    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        received: list[vtgate.VStreamResponse] = []

        async def call() -> None:
            from vsmux.proto import vtgateservice

            channel = Channel("127.0.0.1", srv.port)
            try:
                async for r in vtgateservice.VitessStub(channel).v_stream(vtgate.VStreamRequest()):
                    received.append(r)
            finally:
                channel.close()

        with pytest.raises(GRPCError) as info:
            await in_asyncio(call)
    assert info.value.status == status
    assert info.value.message == "keyspace commerce shard -80: something specific"
    assert len(received) == 1  # what was sent before the error was delivered first


async def test_unexpected_exception_is_internal_and_server_survives(
    aio_loop: None, gateway: Gateway
) -> None:
    calls = 0

    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ExceptionGroup("boom", [RuntimeError("a bug")])
        await send([body(11)])

    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        with pytest.raises(GRPCError) as info:
            await vstream(srv.port, vtgate.VStreamRequest())
        assert info.value.status == Status.INTERNAL
        assert "internal error in vsmux" in (info.value.message or "")
        assert len(await vstream(srv.port, vtgate.VStreamRequest())) == 1


async def test_client_cancel_cancels_the_session_at_once(aio_loop: None, gateway: Gateway) -> None:
    ended = trio.Event()
    cancelled = False

    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        nonlocal cancelled
        try:
            await send([body(15)])
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled = True
            raise
        finally:
            ended.set()

    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        got = await vstream(srv.port, vtgate.VStreamRequest(), limit=1)
        assert len(got) == 1
        with trio.fail_after(5):
            await ended.wait()
        assert cancelled
        await trio.testing.wait_all_tasks_blocked()
        assert gateway.metrics.gateway[ACTIVE_SESSIONS] == 0
        assert gateway.metrics.gateway["bridge_queued_batches"] == 0


async def test_client_deadline_cancels_the_session(aio_loop: None, gateway: Gateway) -> None:
    ended = trio.Event()

    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        try:
            await trio.sleep_forever()
        finally:
            ended.set()

    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        with pytest.raises((GRPCError, TimeoutError)):
            # A real deadline on a real socket: kept short.
            await vstream(srv.port, vtgate.VStreamRequest(), timeout=0.2)
        with trio.fail_after(5):
            await ended.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert gateway.metrics.gateway[ACTIVE_SESSIONS] == 0


async def test_shutdown_ends_sessions_with_unavailable(aio_loop: None, gateway: Gateway) -> None:
    started = trio.Event()

    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        await send([body(15)])
        started.set()
        await trio.sleep_forever()

    outcome: list[BaseException] = []
    received: list[vtgate.VStreamResponse] = []

    async def client(port: int) -> None:
        try:
            received.extend(await vstream(port, vtgate.VStreamRequest()))
        except GRPCError as exc:
            outcome.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery, serve(gateway, run) as srv:  # type: ignore[attr-defined]
            nursery.start_soon(client, srv.port)
            await started.wait()
            # Leaving the server block shuts it down; the client gets its status.
    assert len(outcome) == 1
    assert isinstance(outcome[0], GRPCError)
    assert outcome[0].status == Status.UNAVAILABLE
    assert outcome[0].message == "server shutting down"


async def test_execute_over_grpc(aio_loop: None, gateway: Gateway) -> None:
    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        raise AssertionError("not called")

    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        shards = await execute(
            srv.port, "/*vt+ WORKLOAD_NAME=debezium */ SHOW VITESS_SHARDS LIKE 'commerce/%';"
        )
        other = await execute(srv.port, "SELECT 1")
    assert shards.error is None
    assert shards.result is not None
    assert [r.values for r in shards.result.rows] == [b"commerce/-80", b"commerce/80-"]
    assert other.error is not None
    assert other.error.message == "vsmux only answers metadata queries: 'SELECT 1'"


async def _health_and_services(port: int) -> tuple[int, list[str]]:
    async def call() -> tuple[int, list[str]]:
        channel = Channel("127.0.0.1", port)
        try:
            health = await HealthStub(channel).Check(HealthCheckRequest(service=""))
            async with ServerReflectionStub(channel).ServerReflectionInfo.open() as stream:
                await stream.send_message(ServerReflectionRequest(list_services=""), end=True)
                reply = await stream.recv_message()
                names = [s.name for s in reply.list_services_response.service]
                assert await stream.recv_message() is None
            return health.status, names
        finally:
            channel.close()

    return await in_asyncio(call)


async def test_health_and_reflection(aio_loop: None, gateway: Gateway) -> None:
    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        raise AssertionError("not called")

    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        status, names = await _health_and_services(srv.port)
    assert status == HealthCheckResponse.SERVING
    assert "vtgateservice.Vitess" in names
    assert "grpc.health.v1.Health" in names


async def test_calls_over_the_admission_limits_get_resource_exhausted(aio_loop: None) -> None:
    gateway = Gateway(
        small_topology(),
        Directory(),  # type: ignore[arg-type]
        settings=GatewaySettings(max_streams_per_connection=2, max_streaming_connections=1),
    )
    release = trio.Event()

    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        await send([body(15, 11)])
        await release.wait()

    request = vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace="commerce", gtid="current")]
        )
    )

    async def calls() -> list[Status | None]:
        """Open calls one at a time; each one's status if refused, None if it streams."""
        outcomes: list[Status | None] = []
        first = Channel("127.0.0.1", srv.port)
        second = Channel("127.0.0.1", srv.port)
        async with contextlib.AsyncExitStack() as open_calls:

            async def call(channel: Channel) -> contextlib.AsyncExitStack:
                held = contextlib.AsyncExitStack()
                stream = await held.enter_async_context(
                    channel.request(
                        "/vtgateservice.Vitess/VStream",
                        Cardinality.UNARY_STREAM,
                        vtgate.VStreamRequest,
                        vtgate.VStreamResponse,
                    )
                )
                await stream.send_message(request, end=True)
                try:
                    await stream.recv_message()
                    outcomes.append(None)
                    held.push_async_callback(stream.cancel)  # closing it ends the call
                except GRPCError as exc:
                    outcomes.append(exc.status)
                    messages.append(str(exc.message))
                return held

            a = await open_calls.enter_async_context(await call(first))
            b = await open_calls.enter_async_context(await call(first))
            await call(first)  # a third on the same connection
            await call(second)  # a second connection
            await a.aclose()
            await call(second)  # the first connection still streams
            await b.aclose()
            # Now it may, once the server has seen the first connection's calls end.
            for _ in range(100):
                held = await open_calls.enter_async_context(await call(second))
                if outcomes[-1] is None:
                    break
                await held.aclose()
                outcomes.pop()
                messages.pop()
                await asyncio.sleep(0.02)
        first.close()
        second.close()
        return outcomes

    messages: list[str] = []
    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        with trio.fail_after(10):
            outcomes = await in_asyncio(calls)
        release.set()
    exhausted = Status.RESOURCE_EXHAUSTED
    assert outcomes == [None, None, exhausted, exhausted, exhausted, None]
    assert "--max-streams-per-connection" in messages[0]
    assert all("--max-streaming-connections" in m for m in messages[1:])


async def test_a_call_that_never_sends_its_request_is_ended(
    aio_loop: None, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "REQUEST_READ_TIMEOUT_SECONDS", 0.2)

    async def run(request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses) -> None:
        raise AssertionError("no session starts without a request")

    async def call(port: int) -> GRPCError | None:
        channel = Channel("127.0.0.1", port)
        try:
            async with channel.request(
                "/vtgateservice.Vitess/VStream",
                Cardinality.UNARY_STREAM,
                vtgate.VStreamRequest,
                vtgate.VStreamResponse,
            ) as stream:
                await stream.send_request()  # headers only, never the message
                # The server answers with its status and resets the half-sent
                # stream; grpclib raises the status when the call is left.
                with contextlib.suppress(StreamTerminatedError):
                    await stream.recv_message()
        except GRPCError as exc:
            return exc
        finally:
            channel.close()
        return None

    async with serve(gateway, run) as srv:  # type: ignore[attr-defined]
        with trio.fail_after(5):
            error = await in_asyncio(lambda: call(srv.port))
    assert error is not None and error.status == Status.INVALID_ARGUMENT
    assert "no complete VStream request within 0.2s" in str(error.message)
