"""A grpclib codec that can pass messages through as raw bytes.

The gateway forwards events without re-encoding them: a VStream response body
is built from frames by :func:`vsmux.wire.encode_response`, and a tablet's
response body is split by :func:`vsmux.wire.split_response`. A handler or
stub that names :class:`RawMessage` as its message type sends and receives
``bytes`` untouched; every other type goes through the normal protobuf codec,
so reflection, health and betterproto messages keep working on the same
server or channel.

It lives with the sources (the tablet client needs it) and the server edge
uses it from here, keeping imports pointing down the layers.
"""

from __future__ import annotations

from typing import Any

from grpclib.encoding.proto import ProtoCodec

__all__ = ["RawCodec", "RawMessage"]


class RawMessage:
    """Marker type: the message is already-encoded protobuf ``bytes``.

    Never instantiated; it only stands in a grpclib ``Handler`` or a stub call
    where a message class is expected.
    """

    def __init__(self) -> None:
        raise TypeError("RawMessage is a marker type; send bytes instead")


class RawCodec(ProtoCodec):  # type: ignore[misc]
    """``ProtoCodec`` with a pass-through for :class:`RawMessage`."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if message_type is RawMessage:
            if not isinstance(message, bytes | bytearray | memoryview):
                raise TypeError(f"a raw message must be bytes, not {type(message).__name__}")
            return bytes(message)
        data: bytes = super().encode(message, message_type)
        return data

    def decode(self, data: bytes, message_type: Any) -> Any:
        if message_type is RawMessage:
            return bytes(data)
        return super().decode(data, message_type)
