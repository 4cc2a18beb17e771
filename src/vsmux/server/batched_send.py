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

__all__ = ["frame_messages", "send_batch"]

# The gRPC message prefix: compressed flag (never set here) and length.
_PREFIX = struct.Struct(">BI")


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
    count = len(bodies)
    stream._send_message_done = True
    stream._messages_sent += count
    connection = stream._stream.connection
    connection.messages_sent += count
    connection.last_message_sent = time.monotonic()
