"""A batch of responses written with one send_data is what send_message writes one by one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Cardinality, Handler
from grpclib.exceptions import ProtocolError
from grpclib.server import Server
from grpclib.stream import send_message
from h2.config import H2Configuration
from h2.connection import H2Connection

from tests.server.gw_helpers import in_asyncio
from vsmux.transport._batched_send import (
    DirectWriter,
    data_frames,
    frame_messages,
    send_batch,
    send_batch_nowait,
)
from vsmux.transport._codec import RawCodec, RawMessage

BODIES = [b"", b"a", b"\x0a\x02hi" * 40, bytes(range(256)) * 300]


class _Recorder:
    """Stands in for grpclib's HTTP/2 stream: keeps what send_data was given."""

    def __init__(self) -> None:
        self.data: list[bytes] = []

    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        self.data.append(data)


async def test_the_bytes_are_send_messages_bytes(aio_loop: None) -> None:
    async def compare() -> tuple[bytes, list[bytes]]:
        one_by_one = _Recorder()
        for body in BODIES:
            await send_message(one_by_one, RawCodec(), body, RawMessage)  # type: ignore[arg-type]
        return b"".join(one_by_one.data), [frame_messages(BODIES)]

    expected, batched = await in_asyncio(compare)
    assert batched == [expected]


class _Service:
    """One streamed method that sends each request's batch with send_batch."""

    def __init__(self) -> None:
        self.counts: list[tuple[int, int]] = []
        self.late_error: Exception | None = None

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/test.Batches/Send": Handler(
                self._send, Cardinality.UNARY_STREAM, RawMessage, RawMessage
            )
        }

    async def _send(self, stream: Any) -> None:
        await stream.recv_message()
        await send_batch(stream, BODIES[:2])
        await send_batch(stream, [])  # nothing to write: not even headers again
        await send_batch(stream, BODIES[2:])
        self.counts.append((stream._messages_sent, stream._stream.connection.messages_sent))
        await stream.send_trailing_metadata()
        try:
            await send_batch(stream, [b"late"])
        except ProtocolError as exc:
            self.late_error = exc


async def test_a_client_reads_each_body_as_one_message(aio_loop: None) -> None:
    service = _Service()

    async def call() -> list[bytes]:
        server = Server([service], codec=RawCodec())
        await server.start("127.0.0.1", 0)
        port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        channel = Channel("127.0.0.1", port, codec=RawCodec())
        try:
            async with channel.request(
                "/test.Batches/Send", Cardinality.UNARY_STREAM, RawMessage, RawMessage
            ) as stream:
                await stream.send_message(b"go", end=True)
                received = [message async for message in stream]
            return received
        finally:
            channel.close()
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)

    received = await in_asyncio(call)
    assert received == BODIES
    assert service.counts == [(len(BODIES), len(BODIES))]
    assert isinstance(service.late_error, ProtocolError)


def test_frames_carry_flag_and_big_endian_length() -> None:
    assert frame_messages([b"xyz", b""]) == b"\x00\x00\x00\x00\x03xyz" + b"\x00" * 5
    with pytest.raises(TypeError):
        frame_messages(["not bytes"])  # type: ignore[list-item]


class _NowaitService:
    """Sends with send_batch_nowait where it can, send_batch where it must."""

    BIG = b"x" * 200_000  # more than the client's 64 KiB stream window

    def __init__(self) -> None:
        self.answers: list[bool] = []

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/test.Batches/Send": Handler(
                self._send, Cardinality.UNARY_STREAM, RawMessage, RawMessage
            )
        }

    async def _send(self, stream: Any) -> None:
        await stream.recv_message()
        # No headers sent yet: that needs the awaited path.
        self.answers.append(send_batch_nowait(stream, BODIES[:2]))
        await send_batch(stream, BODIES[:2])
        self.answers.append(send_batch_nowait(stream, BODIES[2:3]))
        self.answers.append(send_batch_nowait(stream, []))
        # Larger than the window: it would wait, so nothing is written.
        self.answers.append(send_batch_nowait(stream, BODIES[3:]))
        await send_batch(stream, BODIES[3:])
        self.answers.append(send_batch_nowait(stream, [self.BIG]))
        await send_batch(stream, [self.BIG])
        self.counts = (stream._messages_sent, stream._stream.connection.messages_sent)


async def test_nowait_writes_what_fits_and_declines_what_would_wait(aio_loop: None) -> None:
    service = _NowaitService()

    async def call() -> list[bytes]:
        server = Server([service], codec=RawCodec())
        await server.start("127.0.0.1", 0)
        port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        small = Configuration(http2_stream_window_size=65_535, http2_connection_window_size=65_535)
        channel = Channel("127.0.0.1", port, codec=RawCodec(), config=small)
        try:
            async with channel.request(
                "/test.Batches/Send", Cardinality.UNARY_STREAM, RawMessage, RawMessage
            ) as stream:
                await stream.send_message(b"go", end=True)
                received = [message async for message in stream]
            return received
        finally:
            channel.close()
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)

    received = await in_asyncio(call)
    assert service.answers == [False, True, True, False, False]
    assert received == [*BODIES, _NowaitService.BIG]  # in order, nothing twice
    assert service.counts == (len(BODIES) + 1, len(BODIES) + 1)


def _open_server_stream(*, end_request: bool) -> H2Connection:
    """A server-side h2 connection with stream 1 open and its response headers sent."""
    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(
        1,
        [(":method", "POST"), (":scheme", "http"), (":path", "/x"), (":authority", "t")],
        end_stream=end_request,
    )
    server = H2Connection(H2Configuration(client_side=False))
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(":status", "200")])
    server.data_to_send()
    return server


@pytest.mark.parametrize("end_request", [False, True])  # the stream OPEN, or HALF_CLOSED_REMOTE
@pytest.mark.parametrize("size", [0, 1, 16_383, 16_384, 16_385, 40_000])
def test_data_frames_are_h2s_own_bytes(end_request: bool, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    by_h2 = _open_server_stream(end_request=end_request)
    frame = by_h2.max_outbound_frame_size
    for start in range(0, size, frame):
        by_h2.send_data(1, data[start : start + frame])
    ours = _open_server_stream(end_request=end_request)
    direct = data_frames(ours, 1, data, frame)
    assert direct == by_h2.data_to_send()
    assert ours.local_flow_control_window(1) == by_h2.local_flow_control_window(1)
    assert ours.outbound_flow_control_window == by_h2.outbound_flow_control_window


def test_data_frames_leave_other_states_to_h2() -> None:
    server = _open_server_stream(end_request=False)
    server.end_stream(1)  # HALF_CLOSED_LOCAL: h2 would refuse the data
    window = server.outbound_flow_control_window
    assert data_frames(server, 1, b"late", 16_384) is None
    assert data_frames(server, 3, b"no such stream", 16_384) is None
    assert data_frames(object(), 1, b"not h2", 16_384) is None
    assert server.outbound_flow_control_window == window


class _FakeConnection:
    """grpclib's connection, as far as a direct write uses it."""

    def __init__(self) -> None:
        self.write_ready = asyncio.Event()
        self.write_ready.set()
        self.data_sent = 0
        self.messages_sent = 0
        self.last_message_sent: float | None = None
        self.data_sends = 0

    def data_send_process(self) -> None:
        self.data_sends += 1


class _FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def _fake_server_stream(h2: H2Connection) -> Any:
    """grpclib's server stream on stream 1 of ``h2``, its headers sent."""
    h2_stream = SimpleNamespace(
        id=1,
        _h2_connection=h2,
        connection=_FakeConnection(),
        _transport=_FakeTransport(),
        data_sent=0,
    )
    return SimpleNamespace(
        _stream=h2_stream,
        _cardinality=Cardinality.UNARY_STREAM,
        _send_initial_metadata_done=True,
        _send_trailing_metadata_done=False,
        _send_message_done=False,
        _messages_sent=0,
    )


BATCHES = [[b"a"], [b"\x0a\x02hi" * 40], [b"", b"b"], [bytes(range(256)) * 100], [b"c"] * 3]


@pytest.mark.parametrize("queued_first", [False, True])
def test_a_kept_writer_writes_h2s_own_bytes_batch_after_batch(queued_first: bool) -> None:
    by_h2 = _open_server_stream(end_request=False)
    ours = _open_server_stream(end_request=False)
    stream = _fake_server_stream(ours)
    writer = DirectWriter(stream)
    expected: list[bytes] = []
    for number, batch in enumerate(BATCHES):
        if queued_first and number % 2:
            # Something h2 queued meanwhile (a PING's answer, say) goes out first.
            for h2 in (by_h2, ours):
                h2.ping(b"12345678")
        data = frame_messages(batch)
        frame = by_h2.max_outbound_frame_size
        for start in range(0, len(data), frame):
            by_h2.send_data(1, data[start : start + frame])
        expected.append(by_h2.data_to_send())
        assert writer.write(batch)
    assert stream._stream._transport.writes == expected
    assert ours.local_flow_control_window(1) == by_h2.local_flow_control_window(1)
    assert ours.outbound_flow_control_window == by_h2.outbound_flow_control_window
    sent = sum(map(len, BATCHES[0] + BATCHES[1] + BATCHES[2] + BATCHES[3] + BATCHES[4]))
    messages = sum(map(len, BATCHES))
    assert stream._stream.data_sent == sent + 5 * messages
    assert stream._messages_sent == messages
    assert stream._stream.connection.messages_sent == messages
    assert stream._stream.connection.data_sends == len(BATCHES)


def test_a_kept_writer_declines_what_would_wait_and_writes_nothing() -> None:
    h2 = _open_server_stream(end_request=False)
    stream = _fake_server_stream(h2)
    writer = DirectWriter(stream)
    writes = stream._stream._transport.writes
    window = h2.local_flow_control_window(1)
    assert writer.write([])  # nothing to write is always done
    assert not writer.write([b"x" * window])  # the prefix makes it one over the window
    assert writer.write([b"x" * (window - 5)])  # exactly the window
    assert not writer.write([b"y"])  # the window is spent
    stream._stream.connection.write_ready.clear()  # the transport is paused
    # The client's WINDOW_UPDATEs, as far as the send windows go.
    h2.streams[1].outbound_flow_control_window += 1000
    h2.outbound_flow_control_window += 1000
    assert not writer.write([b"y"])
    stream._stream.connection.write_ready.set()
    assert writer.write([b"y"])
    stream._send_trailing_metadata_done = True
    assert not writer.write([b"late"])
    assert len(writes) == 2
    assert stream._messages_sent == 2


def test_a_writer_before_the_headers_or_without_h2_declines() -> None:
    h2 = _open_server_stream(end_request=False)
    stream = _fake_server_stream(h2)
    stream._send_initial_metadata_done = False
    assert not DirectWriter(stream).write([b"a"])
    closed = _open_server_stream(end_request=False)
    closed.reset_stream(1)
    assert not DirectWriter(_fake_server_stream(closed)).write([b"a"])
    assert not DirectWriter(SimpleNamespace()).write([b"a"])  # not grpclib at all
    assert stream._stream._transport.writes == []
