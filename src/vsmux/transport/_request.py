"""Reading one request message off a grpclib server stream, bounded in size.

:func:`read_request` reads the gRPC frame header and refuses a message over
the size limit with RESOURCE_EXHAUSTED *before* reading its body. HTTP/2 flow
control does the rest: grpclib acknowledges data only as it is read, so a
refused body never grows past one stream window in memory.

Every failure is a :class:`VStreamError` with a short message; nothing here
logs. Cancelled (the client went away, the server is closing), it stops
reading and nothing is kept.
"""

from __future__ import annotations

import struct
from typing import Any

from vsmux.core.limits import OPTIONS
from vsmux.errors import Code, VStreamError

__all__ = ["read_request"]


async def read_request(stream: Any, limit: int) -> bytes | None:
    """The request message's bytes, or None if the client sent no message.

    ``stream`` is grpclib's server stream. Raises RESOURCE_EXHAUSTED for a
    message over ``limit`` bytes, UNIMPLEMENTED for a compressed one, and
    INVALID_ARGUMENT for one cut short.
    """
    # grpclib's public recv_message reads the whole body before anyone can look
    # at its size; its h2 stream is the only way to read the header alone.
    h2_stream = stream._stream
    header = await h2_stream.recv_data(5)
    if not header:
        return None
    if len(header) < 5:
        raise VStreamError(Code.INVALID_ARGUMENT, "the request ended inside its gRPC frame header")
    compressed, size = struct.unpack(">?I", header)
    if compressed:
        raise VStreamError(
            Code.UNIMPLEMENTED,
            "compressed requests are not supported by vsmux; send the request uncompressed",
        )
    if size > limit:
        raise VStreamError(
            Code.RESOURCE_EXHAUSTED,
            f"request message is {size} bytes, over the limit of {limit} bytes "
            f"(vsmux serve {OPTIONS['max_request_bytes']})",
        )
    try:
        data: bytes = await h2_stream.recv_data(size)
    except AssertionError:  # grpclib's way of saying the stream ended early
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"the request ended before its {size}-byte message was complete",
        ) from None
    if len(data) != size:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"the request ended after {len(data)} of its {size}-byte message",
        )
    return data
