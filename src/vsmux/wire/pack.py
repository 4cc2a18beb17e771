"""Packing frames into client responses, renaming tables on the way.

:class:`ResponsePacker` collects frames from any number of units and shards
and cuts them into encoded ``VStreamResponse`` bodies of at most
``max_bytes`` each (an event too large for that goes alone in its own body).
Frames keep their order, so a VGTID packed before its COMMIT reaches the
client in the same or an earlier body.

With a keyspace, FIELD and ROW events get ``<keyspace>.`` in front of their
table name as they are written: the renamed event's pieces (from
:func:`vsmux.wire.rename.renamed_parts`, the one implementation of that
rewrite) go straight into the body after a record prefix carrying the new
length. Each ROW is therefore copied once, into the body, with no renamed
intermediate bytes and no new :class:`~vsmux.wire.frames.Frame`.
"""

from __future__ import annotations

from collections.abc import Iterable

from vsmux.wire.frames import RECORD_PREFIX, Frame
from vsmux.wire.rename import RENAMED_TYPES, renamed_parts
from vsmux.wire.varint import TABLE_LIMIT, encode_varint

__all__ = ["ResponsePacker", "pack_responses"]


class ResponsePacker:
    """Accumulates frames into response bodies of at most ``max_bytes``.

    :meth:`add` as often as needed, then :meth:`take` the bodies. ``full``
    turns true as soon as one body is complete, so a caller that coalesces
    can stop gathering there.
    """

    __slots__ = ("_bodies", "_max_bytes", "_parts", "_size", "events")

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self._max_bytes = max_bytes
        self._bodies: list[bytes] = []
        self._parts: list[bytes] = []
        self._size = 0
        #: Frames added since the last :meth:`take`.
        self.events = 0

    @property
    def full(self) -> bool:
        """At least one body is complete."""
        return bool(self._bodies)

    def add(self, frames: Iterable[Frame], keyspace: str = "") -> None:
        """Append ``frames`` in order; with ``keyspace``, rename FIELD/ROW tables.

        Raises :class:`~vsmux.wire.errors.FrameError` for a FIELD/ROW event
        that is malformed where the name is; frames added before it stay.
        """
        parts = self._parts
        size = self._size
        max_bytes = self._max_bytes
        prefixes = RECORD_PREFIX
        renamed_types = RENAMED_TYPES if keyspace else ()
        count = 0
        try:
            for frame in frames:
                raw = frame.raw
                pieces = None
                if frame.type in renamed_types:
                    pieces = renamed_parts(frame.type, raw, keyspace)
                if pieces is None:
                    n = len(raw)
                else:
                    n = len(pieces[0]) + len(pieces[1]) + len(pieces[2]) + len(pieces[3])
                prefix = prefixes[n] if n < TABLE_LIMIT else b"\x0a" + encode_varint(n)
                size += len(prefix) + n
                if size > max_bytes and parts:
                    self._bodies.append(b"".join(parts))
                    parts = self._parts = []
                    size = len(prefix) + n
                parts.append(prefix)
                if pieces is None:
                    parts.append(raw)
                else:
                    parts += pieces
                count += 1
        finally:
            self._size = size
            self.events += count

    def take(self) -> list[bytes]:
        """Every body so far (the last one possibly short); the packer starts empty."""
        bodies = self._bodies
        if self._parts:
            bodies.append(b"".join(self._parts))
        self._bodies = []
        self._parts = []
        self._size = 0
        self.events = 0
        return bodies


def pack_responses(frames: Iterable[Frame], max_bytes: int, keyspace: str = "") -> list[bytes]:
    """Encoded VStreamResponse bodies holding ``frames`` in order (see :class:`ResponsePacker`).

    Each body is at most ``max_bytes`` long, except that a frame too large to
    fit on its own goes alone in its own body (an event cannot be split; the
    client then decides whether it can take it). No frames give no bodies.
    """
    packer = ResponsePacker(max_bytes)
    packer.add(frames, keyspace)
    return packer.take()
