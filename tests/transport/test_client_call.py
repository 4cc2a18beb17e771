"""The VStream client call: responses cross from asyncio once per batch."""

from __future__ import annotations

from typing import Any

import grpclib
import pytest
import trio
import trio.testing
from grpclib.const import Cardinality, Handler, Status

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, vtgate
from vsmux.transport import open_grpc_server, open_vstream
from vsmux.transport._client_call import _End, _Item, _Responses, _Started
from vsmux.transport._handoff import Handoff


def response(*types: int) -> vtgate.VStreamResponse:
    return vtgate.VStreamResponse(events=[binlogdata.VEvent(type=t) for t in types])


class ScriptedGateway:
    """Answers VStream with ``responses``, then ``error`` or OK; records the call."""

    def __init__(
        self, responses: list[vtgate.VStreamResponse], error: grpclib.GRPCError | None = None
    ) -> None:
        self.responses = responses
        self.error = error
        self.metadata: dict[str, Any] = {}
        self.requests: list[vtgate.VStreamRequest] = []

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/vtgateservice.Vitess/VStream": Handler(
                self._v_stream,
                Cardinality.UNARY_STREAM,
                vtgate.VStreamRequest,
                vtgate.VStreamResponse,
            )
        }

    async def _v_stream(self, stream: Any) -> None:
        self.metadata = dict(stream.metadata)
        request = await stream.recv_message()
        self.requests.append(request)
        for item in self.responses:
            await stream.send_message(item)
        if self.error is not None:
            raise self.error


async def received(stream: Any) -> list[list[int]]:
    got: list[list[int]] = []
    while (item := await stream.receive()) is not None:
        got.append([e.type for e in item.events])
    return got


async def test_responses_in_order_metadata_sent_and_ok_ends(aio_loop: None) -> None:
    gateway = ScriptedGateway([response(1, 2), response(3), response()])
    request = vtgate.VStreamRequest(flags=vtgate.VStreamFlags(heartbeat_interval=5))
    async with open_grpc_server([gateway]) as (_, port):
        with trio.fail_after(10):
            async with open_vstream(f"127.0.0.1:{port}", request, {"username": "u"}) as stream:
                assert await received(stream) == [[1, 2], [3], []]
                assert await stream.receive() is None  # the end stays the end
    assert gateway.metadata["username"] == "u"
    assert gateway.requests == [request]


async def test_a_status_keeps_its_code_and_the_servers_own_message(aio_loop: None) -> None:
    error = grpclib.GRPCError(Status.FAILED_PRECONDITION, "keyspace 'ks' is resharding")
    gateway = ScriptedGateway([response(1)], error)
    async with open_grpc_server([gateway]) as (_, port):
        with trio.fail_after(10):
            async with open_vstream(f"127.0.0.1:{port}", vtgate.VStreamRequest()) as stream:
                first = await stream.receive()
                assert first is not None and [e.type for e in first.events] == [1]
                with pytest.raises(VStreamError) as info:
                    await stream.receive()
    assert info.value.code == Code.FAILED_PRECONDITION
    assert info.value.message == "keyspace 'ks' is resharding"


async def test_everything_queued_is_taken_in_one_wakeup() -> None:
    handoff: Handoff[_Item] = Handoff(8)
    stream = _Responses(handoff, "127.0.0.1:15991")
    handoff.put_nowait(_Started())
    await stream.started()
    for types in ((1,), (2, 3), (4,)):
        handoff.put_nowait(response(*types))
    handoff.put_nowait(_End(ConnectionResetError("reset by peer")))
    first = await stream.receive()
    assert first is not None and [e.type for e in first.events] == [1]
    assert len(handoff) == 0  # the rest came along and wait on the Trio side
    assert [[e.type for e in r.events] for r in [await stream.receive() for _ in "ab"] if r] == [
        [2, 3],
        [4],
    ]
    with pytest.raises(VStreamError) as info:
        await stream.receive()
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == "connection to 127.0.0.1:15991 failed or dropped: reset by peer"


async def test_a_call_that_cannot_start_fails_at_start() -> None:
    handoff: Handoff[_Item] = Handoff(8)
    stream = _Responses(handoff, "127.0.0.1:15991")
    handoff.put_nowait(_End(ConnectionRefusedError(111, "Connect call failed")))
    with pytest.raises(VStreamError) as info:
        await stream.started()
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == (
        "connection to 127.0.0.1:15991 failed or dropped: [Errno 111] Connect call failed"
    )


async def test_a_cancelled_receive_loses_nothing(autojump_clock: trio.testing.MockClock) -> None:
    handoff: Handoff[_Item] = Handoff(8)
    stream = _Responses(handoff, "127.0.0.1:15991")
    with trio.move_on_after(1) as scope:
        await stream.receive()
    assert scope.cancelled_caught
    handoff.put_nowait(response(7))
    handoff.put_nowait(_End(None))
    with trio.CancelScope() as cancelled:
        cancelled.cancel()
        await stream.receive()  # cancelled at its checkpoint: takes nothing
    got = await stream.receive()
    assert got is not None and [e.type for e in got.events] == [7]
    assert await stream.receive() is None
