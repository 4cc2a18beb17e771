"""upb classes that declare only the fields the hot path reads.

protobuf's C parser (upb) walks bytes far faster than Python can, and skips a
field its class does not declare as an unknown field, without decoding it.
So the hot path parses with classes cut down to what it needs:

- ``Events``: a VStreamResponse whose ``events`` (1) are ``repeated bytes``;
  an embedded message and a bytes field look the same on the wire, so parsing
  hands back each event's encoding untouched.
- ``VEventHeader``: the header fields of ``binlogdata.VEvent``.

Both copy their field numbers from the generated code's descriptors, so the
numbers keep one source of truth.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import vsmux.proto.binlogdata  # noqa: F401  (registers binlogdata.proto in the pool)
from vsmux.proto.google_proto_descriptor_pool import default_google_proto_descriptor_pool

__all__ = ["HEADER_FIELDS", "events_class", "header_class"]

HEADER_FIELDS = ("type", "timestamp", "gtid", "current_time", "keyspace", "shard")
"""The VEvent fields :class:`vsmux.wire.Header` holds."""

_FieldProto = descriptor_pb2.FieldDescriptorProto


def _message_proto(full_name: str) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto()
    default_google_proto_descriptor_pool.FindMessageTypeByName(full_name).CopyToProto(message)
    return message


def _build() -> tuple[Any, Any]:
    header = _message_proto("binlogdata.VEvent")
    fields = [f for f in header.field if f.name in HEADER_FIELDS]
    del header.field[:]
    for field in fields:
        if field.name == "type":
            # An enum is an int32 on the wire; reading it as one keeps this
            # file free of the enum's definition.
            field.type = _FieldProto.TYPE_INT32
            field.ClearField("type_name")
        header.field.add().CopyFrom(field)
    header.name = "VEventHeader"

    events = _message_proto("binlogdata.VStreamResponse")
    (field,) = events.field
    assert field.name == "events" and field.label == _FieldProto.LABEL_REPEATED
    field.type = _FieldProto.TYPE_BYTES
    field.ClearField("type_name")
    events.name = "Events"

    file = descriptor_pb2.FileDescriptorProto(
        name="vsmux/wire/lite.proto", package="vsmux.wire", syntax="proto3"
    )
    file.message_type.add().CopyFrom(header)
    file.message_type.add().CopyFrom(events)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("vsmux.wire.VEventHeader")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("vsmux.wire.Events")),
    )


_HEADER, _EVENTS = _build()


def header_class() -> Any:
    """The upb class of a VEvent's header fields."""
    return _HEADER


def events_class() -> Any:
    """The upb class of a VStreamResponse with its events as bytes."""
    return _EVENTS
