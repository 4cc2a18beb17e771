"""Health and reflection requests have the size bound VStream and Execute have.

grpclib's own services read a whole request message, whatever its size,
before looking at it. The gateway serves them with every request message
read through the frame-header check (``vsmux.transport._hosting``): over
``--max-request-bytes`` is RESOURCE_EXHAUSTED naming the limit, and the
server keeps answering health checks, during the refused call and after.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc
import pytest
import trio
import trio_asyncio
from grpclib.health.v1 import health_pb2
from grpclib.reflection.v1 import reflection_pb2

from tests.server.raw_client import HEALTH, VSTREAM, Outcome, RawClient, poll_health
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, run_vstream
from vsmux.server.app import GatewayServer, open_gateway_server
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog
from vsmux.sources._simulated import SimulatedCluster

REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
REFLECTION_V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

DEFAULT_LIMIT = GatewaySettings().max_request_bytes
OVER_DEFAULT = DEFAULT_LIMIT + 1024 * 1024


@asynccontextmanager
async def gateway(settings: GatewaySettings | None = None) -> AsyncIterator[GatewayServer]:
    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=3, ddl_probability=0.0)
    gw = Gateway(cluster.topology, cluster, settings or GatewaySettings())
    catalog = ClusterTableCatalog(cluster, StaticTableCatalog({}))
    async with trio_asyncio.open_loop(), open_gateway_server(gw, run_vstream, catalog) as srv:
        yield srv


def health_request(size: int) -> bytes:
    """A HealthCheckRequest of about ``size`` bytes (a long service name)."""
    return health_pb2.HealthCheckRequest(service="s" * size).SerializeToString()


def reflection_request(size: int) -> bytes:
    """A ServerReflectionRequest of about ``size`` bytes (a long host name)."""
    return reflection_pb2.ServerReflectionRequest(host="h" * size).SerializeToString()


def list_services() -> bytes:
    return reflection_pb2.ServerReflectionRequest(list_services="*").SerializeToString()


def reflect(client: RawClient, method: str, body: bytes) -> Outcome:
    """One request on a reflection stream; the responses or the status."""
    call = client.channel.stream_stream(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    try:
        responses = list(call(iter([body]), timeout=10))
    except grpc.RpcError as err:
        return Outcome(err.code().name, err.details() or "")
    return Outcome("OK", "", responses)


def too_big(size: int, limit: int) -> str:
    return (
        f"request message is {size} bytes, over the limit of {limit} bytes "
        "(vsmux serve --max-request-bytes)"
    )


async def with_health_polled(port: int, call: Callable[[RawClient], Outcome]) -> Outcome:
    """Run ``call(client)`` in a thread while another connection checks health."""
    done = False
    health_answers: list[float] = []

    def hostile() -> Outcome:
        nonlocal done
        try:
            with RawClient(port) as client:
                return call(client)
        finally:
            done = True

    async def poll() -> None:
        health_answers.extend(await trio.to_thread.run_sync(poll_health, port, lambda: done))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        outcome = await trio.to_thread.run_sync(hostile)
    assert health_answers, "no health check was answered meanwhile"
    return outcome


def check_healthy(port: int) -> None:
    """A normal health check answers SERVING, and reflection lists the services."""
    with RawClient(port) as client:
        client.health()
        listed = reflect(client, REFLECTION, list_services())
    assert listed.code == "OK", listed
    assert b"vtgateservice.Vitess" in listed.responses[0]


async def test_oversized_health_check_is_refused() -> None:
    body = health_request(OVER_DEFAULT)
    async with gateway() as srv:
        outcome = await with_health_polled(srv.port, lambda c: c.call(HEALTH, body))
        assert outcome.code == "RESOURCE_EXHAUSTED", outcome
        assert outcome.details == too_big(len(body), DEFAULT_LIMIT)
        await trio.to_thread.run_sync(check_healthy, srv.port)


@pytest.mark.parametrize("method", [REFLECTION, REFLECTION_V1ALPHA])
async def test_oversized_reflection_request_is_refused(method: str) -> None:
    body = reflection_request(OVER_DEFAULT)
    async with gateway() as srv:
        outcome = await with_health_polled(srv.port, lambda c: reflect(c, method, body))
        assert outcome.code == "RESOURCE_EXHAUSTED", outcome
        assert outcome.details == too_big(len(body), DEFAULT_LIMIT)
        await trio.to_thread.run_sync(check_healthy, srv.port)


async def test_health_and_vstream_share_the_configured_limit() -> None:
    def calls(port: int) -> list[Outcome]:
        with RawClient(port) as client:
            return [
                client.call(HEALTH, health_request(2000)),
                reflect(client, REFLECTION, reflection_request(2000)),
                # Field 1 (vgtid) with 2,000 bytes: the same limit refuses it.
                client.call(VSTREAM, b"\x0a" + bytes([0xD0, 0x0F]) + b"x" * 2000),
            ]

    async with gateway(GatewaySettings(max_request_bytes=1024)) as srv:
        outcomes = await trio.to_thread.run_sync(calls, srv.port)
        for outcome in outcomes:
            assert outcome.code == "RESOURCE_EXHAUSTED", outcome
            assert "over the limit of 1024 bytes (vsmux serve --max-request-bytes)" in (
                outcome.details
            )
        # Requests within the limit are answered as before.
        await trio.to_thread.run_sync(check_healthy, srv.port)


async def test_malformed_health_check_is_invalid_argument(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with gateway() as srv:
        with RawClient(srv.port) as client:
            # A service name field whose length runs past the end of the message.
            outcome = await trio.to_thread.run_sync(client.call, HEALTH, b"\x0a\x05ab")
        assert outcome.code == "INVALID_ARGUMENT", outcome
        assert outcome.details == (
            "malformed /grpc.health.v1.Health/Check request: not a valid protobuf message"
        )
        await trio.to_thread.run_sync(check_healthy, srv.port)
    assert all(record.exc_info is None for record in caplog.records)
