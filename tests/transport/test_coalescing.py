"""A server connection's writes of one loop pass leave as one socket write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import trio
import trio_asyncio
from grpclib.client import Channel

from tests.sources.replay import T, request
from vsmux.proto import binlogdata, queryservice
from vsmux.sources._simulated import SimulatedCluster
from vsmux.sources._simulated.gtid import GtidSet
from vsmux.transport import SimulatedQueryService, open_grpc_server
from vsmux.transport._coalescing import CoalescingTransport
from vsmux.transport._codec import RawCodec


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name)


def _run(coroutine: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coroutine)
    finally:
        loop.close()


def test_writes_of_one_pass_leave_together_in_order() -> None:
    async def scenario() -> None:
        raw = FakeTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"a")
        transport.write(b"")  # nothing to write: nothing kept
        transport.writelines([bytearray(b"b"), memoryview(b"c")])
        assert raw.writes == []  # nothing leaves before the pass ends
        await asyncio.sleep(0)
        assert raw.writes == [b"abc"]
        transport.write(b"d")
        await asyncio.sleep(0)
        assert raw.writes == [b"abc", b"d"]  # a later pass: a write of its own
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)

    _run(scenario())


def test_close_flushes_first_and_abort_drops() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        raw = FakeTransport()
        transport = CoalescingTransport(raw, loop)  # type: ignore[arg-type]
        transport.write(b"last words")
        transport.close()
        assert raw.writes == [b"last words"] and raw.closed
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        assert raw.writes == [b"last words"]

        raw = FakeTransport()
        transport = CoalescingTransport(raw, loop)  # type: ignore[arg-type]
        transport.write(b"dropped")
        transport.abort()
        await asyncio.sleep(0)
        assert raw.writes == [] and raw.aborted

    _run(scenario())


async def test_streams_on_one_connection_share_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five VStreams of one tablet on one connection: all events arrive, in fewer writes."""
    counts = {"kept": 0, "written": 0}
    write, flush = CoalescingTransport.write, CoalescingTransport.flush

    def counting_write(self: CoalescingTransport, data: bytes) -> None:
        counts["kept"] += 1
        write(self, data)

    def counting_flush(self: CoalescingTransport) -> None:
        if self._pending:
            counts["written"] += 1
        flush(self)

    monkeypatch.setattr(CoalescingTransport, "write", counting_write)
    monkeypatch.setattr(CoalescingTransport, "flush", counting_flush)

    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=5)
    cluster.apply_random_transactions(50)
    tablet = cluster.tablet("commerce", "-80")
    req = request(str(GtidSet.single(tablet.log.uuid, 0)), shard="-80")
    last = tablet.position

    async def read_all(stub: queryservice.QueryStub) -> list[bytes]:
        got: list[bytes] = []
        async for response in stub.v_stream(req, timeout=30):
            for event in response.events:
                event.current_time = 0
                got.append(bytes(event))
            if any(e.type == T.GTID and e.gtid == last for e in response.events):
                return got
        raise AssertionError("the stream ended early")

    async def five_streams(port: int) -> list[list[bytes]]:
        channel = Channel("127.0.0.1", port)
        try:
            stub = queryservice.QueryStub(channel)
            return list(await asyncio.gather(*(read_all(stub) for _ in range(5))))
        finally:
            channel.close()

    async with (
        trio_asyncio.open_loop(),
        open_grpc_server(
            [SimulatedQueryService(tablet)], codec=RawCodec(), coalesce_writes=True
        ) as (_, port),
    ):
        with trio.fail_after(30):
            streams = await trio_asyncio.aio_as_trio(five_streams)(port)
    assert len(streams[0]) > 100
    assert all(stream == streams[0] for stream in streams)
    assert binlogdata.VEvent.parse(streams[0][-1]).type in (T.GTID, T.COMMIT)
    assert 0 < counts["written"] < counts["kept"]
