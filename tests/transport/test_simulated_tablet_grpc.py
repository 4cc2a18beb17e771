"""The gRPC-served simulated tablet, read by a real grpclib client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio_asyncio
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from tests.sources.replay import T, request
from vsmux.proto import binlogdata, query, queryservice
from vsmux.sources._simulated import SimulatedCluster, SimulatedTablet
from vsmux.sources._simulated.gtid import GtidSet
from vsmux.transport import SimulatedQueryService, open_grpc_server
from vsmux.transport._codec import RawCodec


@asynccontextmanager
async def served(tablet: SimulatedTablet) -> AsyncIterator[int]:
    async with (
        trio_asyncio.open_loop(),
        open_grpc_server([SimulatedQueryService(tablet)], "127.0.0.1", 0, codec=RawCodec()) as (
            _,
            port,
        ),
    ):
        yield port


def comparable(events: list[binlogdata.VEvent]) -> list[bytes]:
    out = []
    for event in events:
        event.current_time = 0
        out.append(bytes(event))
    return out


async def grpc_events(
    port: int, req: binlogdata.VStreamRequest, until: str
) -> list[binlogdata.VEvent]:
    async def collect() -> list[binlogdata.VEvent]:
        channel = Channel("127.0.0.1", port)
        got: list[binlogdata.VEvent] = []
        try:
            stub = queryservice.QueryStub(channel)
            async for response in stub.v_stream(req, timeout=30):
                got += response.events
                if any(e.type == T.GTID and e.gtid == until for e in response.events):
                    break
        finally:
            channel.close()
        return got

    result: list[binlogdata.VEvent] = await trio_asyncio.aio_as_trio(collect)()
    return result


async def test_grpc_client_sees_the_same_events_as_in_process() -> None:
    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=21, large_probability=0.02)
    cluster.apply_random_transactions(200)
    tablet = cluster.tablet("commerce", "-80")
    req = request(str(GtidSet.single(tablet.log.uuid, 0)), shard="-80")
    expected: list[binlogdata.VEvent] = []
    async with tablet.vstream(req) as stream:
        async for batch in stream:
            expected += [binlogdata.VEvent.parse(f.raw) for f in batch]
            if any(e.type == T.GTID and e.gtid == tablet.position for e in expected[-3:]):
                break
    async with served(tablet) as port:
        got = await grpc_events(port, req, tablet.position)
    assert all(e.current_time > 0 for e in got)
    assert len(got) == len(expected) > 100
    assert comparable(got) == comparable(expected)


async def test_grpc_errors_keep_code_and_message() -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    tablet = cluster.tablet("commerce", "0")
    foreign = "MySQL56/11111111-2222-3333-4444-555555555555:1-3"
    async with served(tablet) as port:
        with pytest.raises(GRPCError) as info:
            await grpc_events(port, request(foreign, shard="0"), "never")
    assert info.value.status == Status.INVALID_ARGUMENT
    assert info.value.message is not None and "GTIDSet Mismatch" in info.value.message


async def test_grpc_stream_health_and_current_position() -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    cluster.apply_random_transactions(5)
    tablet = cluster.tablet("commerce", "0")

    async def first_health(port: int) -> query.StreamHealthResponse:
        channel = Channel("127.0.0.1", port)
        try:
            async for report in queryservice.QueryStub(channel).stream_health(timeout=30):
                return report
        finally:
            channel.close()
        raise AssertionError("no health report")

    async with served(tablet) as port:
        report = await trio_asyncio.aio_as_trio(first_health)(port)
        with trio.fail_after(30):
            got = await grpc_events(port, request("current", shard="0"), tablet.position)
    assert report.serving and report.tablet_alias is not None
    assert report.tablet_alias.uid == tablet.info.uid
    assert [e.type for e in got] == [T.GTID, T.OTHER]
