"""Reading and decoding one request message, before anything else looks at it.

The gateway's handlers receive raw bytes (:class:`~vsmux.transport._codec.RawMessage`)
and come here first:

1. :func:`read_request` reads the gRPC frame header and refuses a message over
   the size limit with RESOURCE_EXHAUSTED *before* reading its body. HTTP/2
   flow control does the rest: grpclib acknowledges data only as it is read,
   so a refused body never grows past one stream window in memory.
2. :func:`decode_request` parses with protobuf's own runtime (upb), so
   malformed input is judged exactly as the official clients and servers
   judge it: a corrupt varint, a truncated field or invalid UTF-8 in a string
   is an error (INVALID_ARGUMENT, naming the field: see
   :mod:`vsmux.wire.diagnose`); unknown fields and known fields sent with
   another wire type are kept as unknown fields, then discarded. The clean
   re-encoding is what the betterproto classes parse, so the gateway never
   acts on, or answers from, a half-parsed request.

Every failure is a :class:`VStreamError` with a short message; nothing here
logs (the caller logs one line with the peer).
"""

from __future__ import annotations

import struct
from typing import Any, TypeVar

from google.protobuf.message import DecodeError

from vsmux.core.limits import OPTIONS
from vsmux.errors import Code, VStreamError
from vsmux.proto import vtgate
from vsmux.wire.diagnose import find_defect
from vsmux.wire.upb import message_class

__all__ = ["count_fields", "decode_request", "read_request"]

M = TypeVar("M")

# betterproto class -> its protobuf full name (upb classes are found by name).
_FULL_NAMES: dict[type[Any], str] = {
    vtgate.VStreamRequest: "vtgate.VStreamRequest",
    vtgate.ExecuteRequest: "vtgate.ExecuteRequest",
}


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


def decode_request(data: bytes, message_type: type[M], max_fields: int) -> M:
    """``data`` as ``message_type``, parsed and cleaned by protobuf first (see the module doc).

    A request with more than ``max_fields`` fields and repeated elements in
    all is refused before the betterproto classes read it: they take a few
    microseconds of Python per element, so four MiB of tiny elements would
    hold the gateway for seconds.
    """
    full_name = _FULL_NAMES[message_type]
    upb_message = message_class(full_name)()
    try:
        upb_message.ParseFromString(data)
    except DecodeError:
        defect = find_defect(data, upb_message.DESCRIPTOR)
        detail = defect if defect is not None else "not a valid protobuf message"
        raise VStreamError(Code.INVALID_ARGUMENT, f"malformed {full_name}: {detail}") from None
    upb_message.DiscardUnknownFields()
    if count_fields(upb_message, max_fields) > max_fields:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"{full_name} has more than {max_fields} fields and list elements, over the limit "
            f"(vsmux serve {OPTIONS['max_request_fields']})",
        )
    clean: bytes = upb_message.SerializeToString()
    try:
        parsed: M = message_type.parse(clean)  # type: ignore[attr-defined]
    except Exception as exc:  # protobuf accepted it: a gap between the two runtimes
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"malformed {full_name}: {type(exc).__name__} while reading it",
        ) from None
    return parsed


def count_fields(message: Any, budget: int) -> int:
    """Set fields and repeated elements of a protobuf message, nested ones included.

    Stops as soon as the count passes ``budget``, so the walk itself costs at
    most ``budget`` steps: a list's length is read without visiting it, and
    only message elements are visited.
    """
    count = 0
    pending = [message]
    while pending:
        for field, value in pending.pop().ListFields():
            if not field.is_repeated:
                count += 1
                if field.message_type is not None:
                    pending.append(value)
            else:
                count += len(value)
                if count > budget:
                    return count
                kind = field.message_type
                if kind is not None and kind.GetOptions().map_entry:
                    if kind.fields_by_name["value"].message_type is not None:
                        pending.extend(value.values())
                elif kind is not None:
                    pending.extend(value)
            if count > budget:
                return count
    return count
