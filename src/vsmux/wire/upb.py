"""protobuf (upb) message classes built from the same descriptors as ``vsmux.proto``.

One source of truth: the descriptor pool the generated betterproto2 code
registers. Used by wire-compatibility tests and benchmarks to compare against
protobuf's own encoder, and available to anything that wants protobuf's C
parser for a message.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import message_factory

import vsmux.proto  # noqa: F401  (registers every file in the pool)
from vsmux.proto.google_proto_descriptor_pool import default_google_proto_descriptor_pool

__all__ = ["message_class"]


@cache
def message_class(full_name: str) -> Any:
    """The protobuf class of message ``full_name`` (e.g. ``"binlogdata.VEvent"``).

    Raises ``KeyError`` for a name the pool does not hold.
    """
    descriptor = default_google_proto_descriptor_pool.FindMessageTypeByName(full_name)
    return message_factory.GetMessageClass(descriptor)
