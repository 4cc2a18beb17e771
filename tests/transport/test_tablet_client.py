"""The gRPC tablet client against a small scripted tablet on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpclib
import pytest
import trio
import trio_asyncio
from grpclib.const import Status

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, query, queryservice, topodata
from vsmux.topology import TabletInfo
from vsmux.transport import open_grpc_server
from vsmux.transport._handoff import Handoff
from vsmux.transport._tablet_client import (
    RESPONSES_AHEAD,
    STREAMS_PER_CONNECTION,
    TabletChannels,
    _End,
    _FrameBatches,
    open_tablet_channels,
)
from vsmux.wire import Frame


class ScriptedTablet(queryservice.QueryBase):
    """Sends ``responses``, then fails with ``error`` or ends, or waits forever."""

    def __init__(self) -> None:
        self.responses: list[binlogdata.VStreamResponse] = []
        self.error: grpclib.GRPCError | None = None
        self.hang = False
        self.requests: list[binlogdata.VStreamRequest] = []
        self.cancelled = asyncio.Event()

    async def v_stream(
        self, message: binlogdata.VStreamRequest
    ) -> AsyncIterator[binlogdata.VStreamResponse]:
        self.requests.append(message)
        try:
            for response in self.responses:
                yield response
            if self.error is not None:
                raise self.error
            if self.hang:
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def stream_health(
        self, message: query.StreamHealthRequest
    ) -> AsyncIterator[query.StreamHealthResponse]:
        yield query.StreamHealthResponse(
            target=query.Target(keyspace="commerce", shard="-80", tablet_type=2),
            serving=True,
            realtime_stats=query.RealtimeStats(replication_lag_seconds=3),
        )


async def poll_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds; it depends on another loop's I/O, no event to wait on."""
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.01)


def tablet_at(port: int) -> TabletInfo:
    return TabletInfo(
        "commerce", "-80", "zone1", 101, topodata.TabletType.PRIMARY, f"127.0.0.1:{port}"
    )


def events(*types: int) -> binlogdata.VStreamResponse:
    return binlogdata.VStreamResponse(
        events=[binlogdata.VEvent(type=t, keyspace="commerce", shard="-80") for t in types]
    )


REQUEST = binlogdata.VStreamRequest(
    target=query.Target(keyspace="commerce", shard="-80", tablet_type=1),
    position="current",
    options=binlogdata.VStreamOptions(internal_tables=["heartbeat"]),
)


async def test_batches_are_the_frames_of_the_responses_in_order(aio_loop: None) -> None:
    tablet = ScriptedTablet()
    tablet.responses = [events(2, 12), events(3)]
    async with (
        open_grpc_server([tablet]) as (_, port),
        open_tablet_channels() as channels,
    ):
        source = channels.source(tablet_at(port))
        async with source.vstream(REQUEST) as batches:
            got = [[f.type for f in batch] async for batch in batches]
        # Responses queued together arrive as one batch; the cut is free.
        assert [t for batch in got for t in batch] == [2, 12, 3]
        assert got in ([[2, 12], [3]], [[2, 12, 3]])
        assert tablet.requests[0].options is not None
        assert tablet.requests[0].options.internal_tables == ["heartbeat"]
        assert tablet.requests[0].position == "current"
        # A second stream to the same address shares the pooled channel.
        async with source.vstream(REQUEST) as batches:
            assert [f.type async for batch in batches for f in batch] == [2, 12, 3]


async def test_stalled_streams_do_not_starve_another_stream_to_the_tablet(
    aio_loop: None,
) -> None:
    # Each response is ~200 KB; the tablet has 2 MB for every stream, then waits.
    big = binlogdata.VStreamResponse(
        events=[binlogdata.VEvent(type=binlogdata.VEventType.DDL, statement="x" * 200_000)]
    )
    tablet = ScriptedTablet()
    tablet.responses = [big] * 10
    tablet.hang = True
    async with (
        open_grpc_server([tablet]) as (_, port),
        open_tablet_channels() as channels,
        contextlib.AsyncExitStack() as stack,
    ):
        source = channels.source(tablet_at(port))
        address = f"127.0.0.1:{port}"
        # Streams that are opened and never read: each fills its own window.
        for _ in range(STREAMS_PER_CONNECTION + 1):
            await stack.enter_async_context(source.vstream(REQUEST))
        await poll_until(lambda: len(tablet.requests) == STREAMS_PER_CONNECTION + 1)
        await trio.sleep(0.3)  # the tablet fills their windows meanwhile
        assert channels.connections(address) == [STREAMS_PER_CONNECTION, 1]
        # With one connection for all of them, this stream got nothing (their
        # unread data held the connection's whole window).
        with trio.fail_after(10):
            async with source.vstream(REQUEST) as batches:
                received = 0
                async for batch in batches:
                    received += len(batch)
                    if received == 10:
                        break
        assert channels.connections(address) == [STREAMS_PER_CONNECTION, 1]
        await stack.aclose()
        # The first connection stays; the extra one closed with its last stream.
        await poll_until(lambda: channels.connections(address) == [0])


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (Status.INVALID_ARGUMENT, Code.INVALID_ARGUMENT),
        (Status.FAILED_PRECONDITION, Code.FAILED_PRECONDITION),
        (Status.UNAVAILABLE, Code.UNAVAILABLE),
        (Status.INTERNAL, Code.INTERNAL),
    ],
)
async def test_tablet_errors_keep_their_code_and_name_the_tablet(
    aio_loop: None, status: Status, code: Code
) -> None:
    tablet = ScriptedTablet()
    tablet.responses = [events(2)]
    tablet.error = grpclib.GRPCError(status, "GTIDSet Mismatch: something (errno 1236)")
    async with open_grpc_server([tablet]) as (_, port), open_tablet_channels() as channels:
        got: list[int] = []
        with pytest.raises(VStreamError) as info:
            async with channels.source(tablet_at(port)).vstream(REQUEST) as batches:
                async for batch in batches:
                    got.extend(f.type for f in batch)
    assert got == [2]  # what came before the error is delivered
    assert info.value.code == code
    assert info.value.message == (
        f"tablet zone1-0000000101 (127.0.0.1:{port}) of commerce/-80: "
        "GTIDSet Mismatch: something (errno 1236)"
    )


async def test_connection_refused_is_unavailable(aio_loop: None) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with open_tablet_channels() as channels:
        with pytest.raises(VStreamError) as info:
            async with channels.source(tablet_at(port)).vstream(REQUEST) as batches:
                async for _ in batches:
                    pass
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message.startswith(
        f"tablet zone1-0000000101 (127.0.0.1:{port}) of commerce/-80: "
    )
    assert "refused" in info.value.message


async def test_leaving_the_block_cancels_the_tablet_stream(aio_loop: None) -> None:
    tablet = ScriptedTablet()
    tablet.responses = [events(2)]
    tablet.hang = True
    async with open_grpc_server([tablet]) as (_, port), open_tablet_channels() as channels:
        async with channels.source(tablet_at(port)).vstream(REQUEST) as batches:
            first = await batches.__anext__()
            assert [f.type for f in first] == [2]
        with trio.fail_after(5):
            await trio_asyncio.aio_as_trio(tablet.cancelled.wait)()


async def test_consumer_errors_come_back_unwrapped(aio_loop: None) -> None:
    tablet = ScriptedTablet()
    tablet.responses = [events(2)]
    tablet.hang = True
    async with open_grpc_server([tablet]) as (_, port), open_tablet_channels() as channels:
        with pytest.raises(KeyError):
            async with channels.source(tablet_at(port)).vstream(REQUEST) as batches:
                await batches.__anext__()
                raise KeyError("the consumer's own error")


async def test_stream_health(aio_loop: None) -> None:
    tablet = ScriptedTablet()
    async with (
        open_grpc_server([tablet]) as (_, port),
        open_tablet_channels() as channels,
        channels.source(tablet_at(port)).stream_health() as reports,
    ):
        report = await reports.__anext__()
    assert report.serving
    assert report.realtime_stats is not None
    assert report.realtime_stats.replication_lag_seconds == 3


class FloodingTablet(ScriptedTablet):
    """Streams ``count`` responses of ~64 KiB as fast as flow control allows."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.sent = 0

    async def v_stream(
        self, message: binlogdata.VStreamRequest
    ) -> AsyncIterator[binlogdata.VStreamResponse]:
        big = binlogdata.VStreamResponse(
            events=[binlogdata.VEvent(type=binlogdata.VEventType.OTHER, statement="x" * 65_000)]
        )
        for _ in range(self.count):
            yield big
            self.sent += 1  # grpclib asks for the next one once this one is written


async def test_a_stalled_stream_holds_a_bounded_window_and_health_keeps_flowing(
    aio_loop: None,
) -> None:
    tablet = FloodingTablet(count=64)  # ~4 MiB: grpclib's default windows would take it all
    async with (
        open_grpc_server([tablet]) as (_, port),
        open_tablet_channels(stream_window_bytes=256 * 1024) as channels,
    ):
        source = channels.source(tablet_at(port))
        async with source.vstream(REQUEST) as batches:
            await batches.__anext__()  # then stop reading
            # The health stream shares the connection: the stalled VStream must
            # not have used up the connection's window.
            with trio.fail_after(5):
                async with source.stream_health() as reports:
                    assert (await reports.__anext__()).serving
            # Written by the tablet: the first batch taken (up to a full
            # handoff), a full handoff since, one being read, and what fits the
            # 256 KiB stream window (4 responses).
            assert tablet.sent <= RESPONSES_AHEAD + RESPONSES_AHEAD + 1 + 4 + 1


def frames_of(*types: int) -> list[Frame]:
    return [Frame(t, bytes([0x08, t])) for t in types]


def unavailable(exc: BaseException) -> VStreamError:
    return VStreamError(Code.UNAVAILABLE, f"tablet gone: {exc}")


async def test_queued_responses_are_joined_and_the_failure_comes_after_them() -> None:
    handoff: Handoff[list[Frame] | _End] = Handoff(8)
    for item in (frames_of(2, 12), [], frames_of(3), _End(ConnectionError("reset"))):
        handoff.put_nowait(item)
    batches = _FrameBatches(handoff, unavailable)
    assert [f.type for f in await batches.__anext__()] == [2, 12, 3]
    with pytest.raises(VStreamError, match="tablet gone: reset"):
        await batches.__anext__()


async def test_an_empty_response_is_an_empty_batch_and_the_end_ends() -> None:
    handoff: Handoff[list[Frame] | _End] = Handoff(8)
    batches = _FrameBatches(handoff, unavailable)
    handoff.put_nowait([])
    assert await batches.__anext__() == []
    handoff.put_nowait(frames_of(2))
    handoff.put_nowait(_End(None))
    assert [f.type for f in await batches.__anext__()] == [2]
    with pytest.raises(StopAsyncIteration):
        await batches.__anext__()
    with pytest.raises(StopAsyncIteration):
        await batches.__anext__()


class CountedConnects:
    """Counts the asyncio loop's TCP connects; the first one may be held until ``release``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, hold_first: bool = False) -> None:
        loop = trio_asyncio.current_loop.get()
        connect = loop.create_connection
        self.count = 0
        self.release = asyncio.Event()
        if not hold_first:
            self.release.set()

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if self.count == 1:
                await self.release.wait()
            return await connect(*args, **kwargs)

        monkeypatch.setattr(loop, "create_connection", counted)


async def test_streams_opened_at_once_wait_for_one_connect(
    aio_loop: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tablet = ScriptedTablet()
    connects = CountedConnects(monkeypatch)
    channels = TabletChannels(streams_per_connection=4)
    reported = 0

    async def one_report() -> None:
        nonlocal reported
        async with channels.source(tablet_at(port)).stream_health() as reports:
            assert (await reports.__anext__()).serving
            reported += 1

    try:
        async with open_grpc_server([tablet]) as (_, port), trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(one_report)
    finally:
        channels.close()
    assert reported == 4
    assert connects.count == 1


async def test_a_refused_connect_fails_every_stream_waiting_for_it(
    aio_loop: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connects = CountedConnects(monkeypatch)
    errors: list[VStreamError] = []

    async def one_stream(channels: TabletChannels) -> None:
        with pytest.raises(VStreamError) as info:
            async with channels.source(tablet_at(port)).vstream(REQUEST) as batches:
                async for _ in batches:
                    pass
        errors.append(info.value)

    async with open_tablet_channels() as channels, trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one_stream, channels)
    assert connects.count == 1
    assert [e.code for e in errors] == [Code.UNAVAILABLE] * 3
    assert all("refused" in e.message for e in errors)


async def test_a_connect_left_by_its_stream_is_made_by_a_waiting_one_race(
    aio_loop: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tablet = ScriptedTablet()
    connects = CountedConnects(monkeypatch, hold_first=True)
    async with (
        open_grpc_server([tablet]) as (_, port),
        open_tablet_channels() as channels,
        trio.open_nursery() as nursery,
    ):
        source = channels.source(tablet_at(port))
        first = trio.CancelScope()

        async def connecting() -> None:
            with first:
                async with source.stream_health() as reports:
                    await reports.__anext__()

        nursery.start_soon(connecting)
        await poll_until(lambda: connects.count == 1)  # held in its connect
        with trio.fail_after(5):
            async with source.stream_health() as reports:
                first.cancel()  # the stream making the connect leaves; this one makes it
                assert (await reports.__anext__()).serving
        assert connects.count == 2
        connects.release.set()


class FloodingTabletPerCall(FloodingTablet):
    """A FloodingTablet that counts what it wrote on each call, in call order."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.sent_by_call: list[int] = []

    async def v_stream(
        self, message: binlogdata.VStreamRequest
    ) -> AsyncIterator[binlogdata.VStreamResponse]:
        call = len(self.sent_by_call)
        self.sent_by_call.append(0)
        async for response in super().v_stream(message):
            yield response
            self.sent_by_call[call] += 1


async def test_a_busy_tablets_new_connections_give_smaller_windows(aio_loop: None) -> None:
    tablet = FloodingTabletPerCall(count=64)  # ~4 MiB per call
    channels = TabletChannels(
        stream_window_bytes=512 * 1024,
        streams_per_connection=1,
        busy_tablet_streams=1,
        busy_stream_window_bytes=64 * 1024,
    )
    try:
        async with open_grpc_server([tablet]) as (_, port), contextlib.AsyncExitStack() as stack:
            source = channels.source(tablet_at(port))
            for _ in range(2):  # the second opens a connection to a tablet already busy
                batches = await stack.enter_async_context(source.vstream(REQUEST))
                await batches.__anext__()  # then stop reading
            await trio.sleep(0.3)  # the tablet fills both windows meanwhile
            quiet, busy = tablet.sent_by_call
            # Both: the first batch taken (up to a full handoff), a full handoff
            # since, one being read; then what fits the window (~65 KB each).
            assert busy <= RESPONSES_AHEAD + RESPONSES_AHEAD + 1 + 1 + 1
            assert quiet >= busy + 4  # 512 KiB holds eight of them
    finally:
        channels.close()


def _hanging_tablet() -> ScriptedTablet:
    """A tablet that sends each stream one batch (a BEGIN) and then nothing."""
    tablet = ScriptedTablet()
    tablet.responses = [events(2)]
    tablet.hang = True
    return tablet


async def test_closed_streams_are_forgotten_by_an_idle_connection(aio_loop: None) -> None:
    async with (
        open_grpc_server([_hanging_tablet()]) as (_, port),
        open_tablet_channels() as channels,
    ):
        source = channels.source(tablet_at(port))
        # Five streams open at once, then left (opening a stream makes h2 drop
        # the closed ones, so one after another would leave only the last).
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(5):
                batches = await stack.enter_async_context(source.vstream(REQUEST))
                assert [f.type for f in await anext(batches)] == [2]
        # The connection's HTTP/2 state still holds the five ended streams ...
        (connection,) = channels._pools[f"127.0.0.1:{port}"]
        h2 = connection.channel._protocol.connection._connection
        await poll_until(lambda: sum(s.closed for s in h2.streams.values()) == 5)
        # ... until asked to let them go; it keeps working after.
        assert channels.forget_closed_streams() == 5
        assert h2.streams == {}
        assert channels.forget_closed_streams() == 0
        async with source.vstream(REQUEST) as batches:
            assert [f.type for f in await anext(batches)] == [2]


def test_a_pool_without_connections_forgets_nothing() -> None:
    assert TabletChannels().forget_closed_streams() == 0
    assert TabletChannels().close_idle() == 0


async def test_idle_connections_close_and_the_next_stream_reconnects(aio_loop: None) -> None:
    channels = TabletChannels(streams_per_connection=2)
    try:
        async with open_grpc_server([_hanging_tablet()]) as (_, port):
            address = f"127.0.0.1:{port}"
            source = channels.source(tablet_at(port))
            async with contextlib.AsyncExitStack() as held:
                async with contextlib.AsyncExitStack() as left:
                    # Three streams: two on the first connection, one on a second.
                    for stack in (held, left, left):
                        batches = await stack.enter_async_context(source.vstream(REQUEST))
                        assert [f.type for f in await anext(batches)] == [2]
                    assert channels.connections(address) == [2, 1]
                # The second connection closed with its last stream; the first
                # carries the stream still held, so it stays.
                await poll_until(lambda: channels.connections(address) == [1])
                assert channels.close_idle() == 0
            # No stream left: the first connection stays open ...
            await poll_until(lambda: channels.connections(address) == [0])
            (first,) = channels._pools[address]
            protocol = first.channel._protocol
            await trio.sleep(0.2)
            assert not protocol.handler.connection_lost
            # ... until the idle ones are closed (the tablet still serving).
            assert channels.close_idle() == 1
            assert channels.connections(address) == []
            assert channels.close_idle() == 0
            await poll_until(lambda: protocol.handler.connection_lost)
    finally:
        channels.close()


async def test_a_stream_after_close_idle_connects_again(aio_loop: None) -> None:
    async with (
        open_grpc_server([_hanging_tablet()]) as (_, port),
        open_tablet_channels() as channels,
    ):
        source = channels.source(tablet_at(port))
        for _ in range(2):
            async with source.vstream(REQUEST) as batches:
                assert [f.type for f in await anext(batches)] == [2]
            await poll_until(lambda: channels.connections(f"127.0.0.1:{port}") == [0])
            assert channels.close_idle() == 1
