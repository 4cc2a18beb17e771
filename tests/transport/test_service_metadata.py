"""``Call.metadata``: the request's gRPC metadata as a Trio handler reads it."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import trio_asyncio
from grpclib.client import Channel

from vsmux.proto import vtgate, vtgateservice
from vsmux.transport import Call, Method, TrioService, open_grpc_endpoint


async def test_handler_reads_text_metadata_only(aio_loop: None) -> None:
    seen: list[Mapping[str, str]] = []

    async def execute(call: Call) -> vtgate.ExecuteResponse:
        seen.append(call.metadata)
        return vtgate.ExecuteResponse()

    service = TrioService(
        "vtgateservice.Vitess",
        [Method("Execute", execute, vtgate.ExecuteResponse)],
        max_request_bytes=1 << 20,
        read_timeout=5,
    )
    async with open_grpc_endpoint(service, max_request_bytes=1 << 20) as endpoint:

        async def call() -> None:
            channel = Channel("127.0.0.1", endpoint.port)
            try:
                await vtgateservice.VitessStub(channel).execute(
                    vtgate.ExecuteRequest(),
                    metadata={"username": "alice", "password": "s3cret", "blob-bin": b"\x00"},
                )
            finally:
                channel.close()

        await trio_asyncio.aio_as_trio(call)()
    [metadata] = seen
    assert metadata["username"] == "alice"
    assert metadata["password"] == "s3cret"
    assert "blob-bin" not in metadata
    assert not any(key.startswith(("grpc-", ":")) for key in metadata)
    with pytest.raises(TypeError):
        metadata["username"] = "mallory"  # type: ignore[index]
