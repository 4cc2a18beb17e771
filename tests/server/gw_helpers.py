"""Shared pieces for server tests: a topology and grpclib client calls."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import trio_asyncio
from grpclib.client import Channel

from vsmux.proto import query, topodata, vtgate, vtgateservice
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology

T = TypeVar("T")


def small_topology() -> Topology:
    return Topology(
        cell="zone1",
        keyspaces={"commerce": KeyspaceInfo("commerce", ["-80", "80-"])},
        tablets=[
            TabletInfo("commerce", "-80", "zone1", 100, topodata.TabletType.PRIMARY),
            TabletInfo("commerce", "80-", "zone1", 200, topodata.TabletType.PRIMARY),
        ],
    )


async def in_asyncio(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an asyncio coroutine function from the Trio test body."""
    result: T = await trio_asyncio.aio_as_trio(fn)()
    return result


async def vstream(
    port: int,
    request: vtgate.VStreamRequest,
    *,
    limit: int | None = None,
    timeout: float | None = None,
    metadata: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[vtgate.VStreamResponse]:
    """Call VStream with a plain grpclib/betterproto client, as any client would."""

    async def call() -> list[vtgate.VStreamResponse]:
        channel = Channel("127.0.0.1", port, ssl=ssl_context)
        try:
            stub = vtgateservice.VitessStub(channel)
            out: list[vtgate.VStreamResponse] = []
            async for response in stub.v_stream(request, timeout=timeout, metadata=metadata):
                out.append(response)
                if limit is not None and len(out) >= limit:
                    break
            return out
        finally:
            channel.close()

    return await in_asyncio(call)


async def execute(
    port: int,
    sql: str,
    target: str = "",
    *,
    metadata: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> vtgate.ExecuteResponse:
    async def call() -> vtgate.ExecuteResponse:
        channel = Channel("127.0.0.1", port, ssl=ssl_context)
        try:
            stub = vtgateservice.VitessStub(channel)
            request = vtgate.ExecuteRequest(
                session=vtgate.Session(target_string=target), query=query.BoundQuery(sql=sql)
            )
            response: vtgate.ExecuteResponse = await stub.execute(request, metadata=metadata)
            return response
        finally:
            channel.close()

    return await in_asyncio(call)
