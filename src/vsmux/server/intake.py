"""Decoding one request message, before anything else looks at it.

The gateway's handlers receive a request as raw bytes, read by the transport
(which refuses one over the size limit from its gRPC frame header, before
the body is read: :mod:`vsmux.transport._request`), and come here first.
:func:`decode_request` parses with protobuf's own runtime (upb), so
malformed input is judged exactly as the official clients and servers judge
it: a corrupt varint, a truncated field or invalid UTF-8 in a string is an
error (INVALID_ARGUMENT, naming the field: see :mod:`vsmux.wire.diagnose`);
unknown fields and known fields sent with another wire type are kept as
unknown fields, then discarded. The clean re-encoding is what the betterproto
classes parse, so the gateway never acts on, or answers from, a half-parsed
request.

Every failure is a :class:`VStreamError` with a short message; nothing here
logs (the caller logs one line with the peer).
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.message import DecodeError

from vsmux.core.limits import OPTIONS
from vsmux.errors import Code, VStreamError
from vsmux.proto import vtgate
from vsmux.wire.diagnose import find_defect
from vsmux.wire.upb import message_class

__all__ = ["count_fields", "decode_request"]

M = TypeVar("M")

# betterproto class -> its protobuf full name (upb classes are found by name).
_FULL_NAMES: dict[type[Any], str] = {
    vtgate.VStreamRequest: "vtgate.VStreamRequest",
    vtgate.ExecuteRequest: "vtgate.ExecuteRequest",
}


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
