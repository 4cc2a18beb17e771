"""Writing a batch of responses to a grpclib server stream with one call.

The gateway sends one unit per ``VStreamResponse`` (see
:mod:`vsmux.mux.sender`), so a busy stream produces many small responses.
grpclib's ``Stream.send_message`` costs several microseconds per message
(a dispatch, a header, an HTTP/2 ``send_data`` with its flow-control checks
and a transport write), which is paid per response. Here a batch is framed
as gRPC messages (the 5-byte prefix: a compressed flag of 0 and a big-endian
length, then the encoded body), joined, and handed to the HTTP/2 stream's
``send_data`` once: the per-response cost becomes building a prefix.

On the wire this is exactly what ``send_message`` would write message by
message: the client's gRPC stack reads the DATA frames as a byte stream and
cuts messages by their prefixes, wherever the HTTP/2 frames happen to end.

What ``send_message`` checks and counts is kept: the initial metadata goes
first (once), nothing is written after the trailers, and the stream's and
connection's message counters and last-send time advance as if each body
were sent on its own. Not kept: grpclib's ``SendMessage`` event, which is
fired per message for listeners; the gateway registers none.

Uses grpclib internals (``Stream._stream``, the ``_send_*_done`` flags, the
counters), checked against the grpclib version pinned in ``pyproject.toml``;
tests compare the bytes with ``send_message``'s.

Cancellation: ``send_data`` waits on HTTP/2 flow control; cancelling the
task there leaves part of the batch written, which is fine because the
stream is reset with the cancelled call.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from grpclib.exceptions import ProtocolError
from h2.connection import ConnectionState
from h2.stream import StreamState

__all__ = ["DirectWriter", "data_frames", "frame_messages", "send_batch", "send_batch_nowait"]

# The gRPC message prefix: compressed flag (never set here) and length.
_PREFIX = struct.Struct(">BI")

# An HTTP/2 frame header: a 24-bit length (as 16 + 8 bits), type, flags, stream id.
_DATA_HEADER = struct.Struct(">HBBBI")

# Both at once, for a response that fits one frame.
_DATA_AND_PREFIX = struct.Struct(">HBBBIBI")

# The h2 states in which a DATA frame changes nothing but the send windows
# (h2's own transition tables map SEND_DATA from each to itself).
_SERVER_OPEN = getattr(ConnectionState, "SERVER_OPEN", None)
_MAY_SEND_DATA = frozenset(
    state
    for state in (
        getattr(StreamState, "OPEN", None),
        getattr(StreamState, "HALF_CLOSED_REMOTE", None),
    )
    if state is not None
)


def frame_messages(bodies: list[bytes]) -> bytes:
    """``bodies`` as consecutive length-prefixed gRPC messages."""
    pack = _PREFIX.pack
    parts: list[bytes] = []
    for body in bodies:
        parts.append(pack(0, len(body)))
        parts.append(body)
    return b"".join(parts)


async def send_batch(stream: Any, bodies: list[bytes]) -> None:
    """Send ``bodies`` (encoded responses) on the grpclib server ``stream``, in order.

    ``stream`` is the ``grpclib.server.Stream`` a handler got; its response
    type must be streamed. Raises ``ProtocolError`` when the stream already
    sent its trailers.
    """
    if not bodies:
        return
    if not stream._cardinality.server_streaming:
        raise ProtocolError("a batch needs a streamed response")
    if stream._send_trailing_metadata_done:
        raise ProtocolError("the response stream is already closed")
    if not stream._send_initial_metadata_done:
        await stream.send_initial_metadata()
    await stream._stream.send_data(frame_messages(bodies))
    _count_sent(stream, len(bodies))


def data_frames(h2: Any, stream_id: int, data: bytes, max_frame: int) -> bytes | None:
    """``data`` as the DATA frames ``h2.send_data`` would queue, or None to let h2 do it.

    h2 builds a frame object per DATA frame, runs both state machines and
    serializes the frame: ~10 us per call, paid per client write (a third
    of the HTTP/2 cost of a shared stream's delivery). When the connection
    is a server's and open, and the stream may send data, those steps
    change nothing but the two send windows, so this builds the frames'
    bytes itself (9-byte header: length, type 0, no flags, stream id) and
    takes ``len(data)`` off both windows, as h2 does. The caller has
    checked that the windows hold ``data``; it writes the returned bytes
    after anything h2 already queued. Anything unexpected (another h2
    version's internals, another state) answers None, and h2 is used.
    """
    try:
        stream = h2.streams.get(stream_id)
        if (
            stream is None
            or h2.state_machine.state is not _SERVER_OPEN
            or stream.state_machine.state not in _MAY_SEND_DATA
        ):
            return None
        frames = _frames(stream_id, data, max_frame)
        stream.outbound_flow_control_window -= len(data)
        h2.outbound_flow_control_window -= len(data)
    except AttributeError:
        return None
    return frames


def _frames(stream_id: int, data: bytes, max_frame: int) -> bytes:
    """``data`` cut into DATA frames of ``stream_id``: 9-byte headers, no flags."""
    header = _DATA_HEADER.pack
    parts: list[bytes] = []
    for start in range(0, len(data), max_frame):
        chunk = data[start : start + max_frame]
        n = len(chunk)
        parts.append(header(n >> 8, n & 0xFF, 0, 0, stream_id))
        parts.append(chunk)
    return b"".join(parts)


def _count_sent(stream: Any, count: int) -> None:
    """Advance the counters ``send_message`` would, for ``count`` messages."""
    stream._send_message_done = True
    stream._messages_sent += count
    connection = stream._stream.connection
    connection.messages_sent += count
    connection.last_message_sent = time.monotonic()


def send_batch_nowait(stream: Any, bodies: list[bytes]) -> bool:
    """:func:`send_batch` without waiting: True if written now, False if it would wait.

    One write through a :class:`DirectWriter` made for it; a caller that
    writes to the same stream again and again keeps a writer instead.
    """
    return DirectWriter(stream).write(bodies)


class DirectWriter:
    """Writes batches to one grpclib server ``stream`` when that needs no wait.

    :meth:`write` writes only when :func:`send_batch` would not wait at all:
    the initial metadata is already sent, the transport is not paused, the
    connection and the stream are open (the only states in which a DATA
    frame changes nothing in h2 but the send windows, see
    :func:`data_frames`), and the stream's and connection's send windows hold
    the whole batch. Then it writes the same bytes ``send_batch`` would (DATA
    frames of at most the peer's frame size, after anything h2 already
    queued) with one transport write, synchronously, takes the batch off both
    windows and advances the counters ``send_message`` would. Otherwise
    nothing is written and the caller uses ``send_batch``. A grpclib or h2
    surprise while checking also answers False (the awaited path reports it
    properly); the transport's own error while writing is raised.

    The grpclib and h2 objects a write goes through are looked up on the
    first write after the headers went out and kept: a session writes
    thousands of small batches to the same stream, and those lookups were a
    third of the cost of each. Lets a Trio task write to a client that keeps
    up without a hop through the asyncio loop's queue (see
    :mod:`vsmux.transport._bridge`).
    """

    __slots__ = (
        "_connection",
        "_h2",
        "_h2_stream",
        "_peek_queued",
        "_state",
        "_stream",
        "_transport",
    )

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._state: Any = None  # h2's stream, once found
        self._h2_stream: Any = None
        self._connection: Any = None
        self._h2: Any = None
        self._transport: Any = None
        self._peek_queued = False  # h2 keeps its queued bytes where we can look

    def _find(self) -> bool:
        stream = self._stream
        if not stream._cardinality.server_streaming:
            return False
        h2_stream = stream._stream
        h2 = h2_stream._h2_connection
        state = h2.streams.get(h2_stream.id)
        if state is None:
            return False
        self._h2_stream = h2_stream
        self._connection = h2_stream.connection
        self._h2 = h2
        self._transport = h2_stream._transport
        self._peek_queued = isinstance(getattr(h2, "_data_to_send", None), bytearray)
        self._state = state
        return True

    def write(self, bodies: list[bytes]) -> bool:
        """Write ``bodies`` now if that needs no wait; see the class docstring."""
        if not bodies:
            return True
        stream = self._stream
        try:
            if stream._send_trailing_metadata_done or not stream._send_initial_metadata_done:
                return False
            state = self._state
            if state is None:
                if not self._find():
                    return False
                state = self._state
            h2 = self._h2
            connection = self._connection
            if (
                not connection.write_ready.is_set()
                or h2.state_machine.state is not _SERVER_OPEN
                or state.state_machine.state not in _MAY_SEND_DATA
            ):
                return False
            if len(bodies) == 1:
                size = len(bodies[0]) + _PREFIX.size
            else:
                # The framed size, without framing: a batch that must wait
                # is framed by send_batch instead.
                size = sum(map(len, bodies)) + _PREFIX.size * len(bodies)
            if state.outbound_flow_control_window < size or h2.outbound_flow_control_window < size:
                return False
            frame = h2.max_outbound_frame_size
            stream_id = self._h2_stream.id
        except Exception:  # a closed stream, say: the awaited path reports it properly
            return False
        if len(bodies) == 1 and size <= frame:
            # The usual case: one response in one frame, both headers at once.
            data = _DATA_AND_PREFIX.pack(size >> 8, size & 0xFF, 0, 0, stream_id, 0, size - 5)
            data += bodies[0]
        else:
            data = _frames(stream_id, frame_messages(bodies), frame)
        state.outbound_flow_control_window -= size
        h2.outbound_flow_control_window -= size
        if not self._peek_queued or h2._data_to_send:
            data = h2.data_to_send() + data  # what h2 queued goes first
        self._transport.write(data)
        self._h2_stream.data_sent += size
        connection.data_sent += size
        connection.data_send_process()
        _count_sent(stream, len(bodies))
        return True
