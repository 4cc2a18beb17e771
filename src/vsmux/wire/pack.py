"""Packing frames into client responses, renaming tables on the way.

:class:`ResponsePacker` collects frames and cuts them into encoded
``VStreamResponse`` bodies of at most ``max_bytes`` each (an event too large
for that goes alone in its own body). Frames keep their order, and a unit
split over bodies keeps its closing VGTID and COMMIT together.
:meth:`ResponsePacker.add_unit` starts a new body first: the gateway puts one
unit (a transaction, a journal, ...) in each response, as vtgate does, so
frames of two units never share a body.

With a keyspace, FIELD and ROW events get ``<keyspace>.`` in front of their
table name as they are written (see :mod:`vsmux.wire.rename` for the byte
layout): the record prefix with the new length, the bytes before the
sub-message's length, its new length, the cached new name field and the rest
of the event go straight into the body. Each ROW is copied once, into the
body, with no renamed intermediate bytes and no new
:class:`~vsmux.wire.frames.Frame`. This is the one implementation of the
rewrite; :func:`rename_table` runs it on a single frame.

When the C loops are built (:mod:`vsmux.wire.accel`), a packer writes
through the extension's ``Packer``, which does the same rewrite in C and
stops at any event it does not recognise; that event is written by the
Python walk (:func:`~vsmux.wire.rename.renamed_parts_walk`, which raises
:class:`~vsmux.wire.errors.FrameError` for malformed bytes) and C carries on
after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from vsmux.proto import binlogdata
from vsmux.wire.accel import native
from vsmux.wire.frames import RECORD_PREFIX, Frame
from vsmux.wire.rename import (
    FAST_LAYOUT,
    FIELD,
    ROW,
    name_fields,
    new_name_field,
    renamed_parts_walk,
)
from vsmux.wire.varint import TABLE_LIMIT, VARINT, encode_varint, read_varint

_VGTID = int(binlogdata.VEventType.VGTID)
_COMMIT = int(binlogdata.VEventType.COMMIT)

if TYPE_CHECKING:
    from vsmux.wire._accel import Packer

__all__ = ["ResponsePacker", "closing_pair_fits", "pack_responses", "rename_table"]

_FAST_ROW = FAST_LAYOUT[ROW]
_FAST_FIELD = FAST_LAYOUT[FIELD]
_RENAMED = frozenset((ROW, FIELD))

# keyspace -> b"<keyspace>." for the C packer (a gateway serves few keyspaces;
# the bound only keeps a stream of ever-new names from growing it).
_PREFIXES: dict[str, bytes] = {}


def _name_prefix(keyspace: str) -> bytes:
    prefix = _PREFIXES.get(keyspace)
    if prefix is None:
        if len(_PREFIXES) >= 1024:
            _PREFIXES.clear()
        prefix = _PREFIXES[keyspace] = keyspace.encode() + b"."
    return prefix


def closing_pair_fits(packed: int, vgtid: bytes, commit: bytes, max_bytes: int) -> bool:
    """Whether a unit's closing VGTID and COMMIT join the ``packed`` bytes of its body.

    :meth:`ResponsePacker.add_unit` cuts the body before them otherwise,
    so that the two always travel in one response.
    """
    # Each record is its bytes plus a key and a length of at most 3 bytes here.
    return packed + len(vgtid) + len(commit) + 8 <= max_bytes


def _event_bytes(frame: Frame, keyspace: str | None) -> bytes:
    """``frame``'s event as the client gets it, by the Python walk."""
    if keyspace is not None and frame.type in _RENAMED:
        pieces = renamed_parts_walk(frame.type, frame.raw, keyspace)
        if pieces is not None:
            return b"".join(pieces)
    return frame.raw


class ResponsePacker:
    """Accumulates frames into response bodies of at most ``max_bytes``.

    :meth:`add` or :meth:`add_unit` as often as needed, then :meth:`take` the
    bodies; :attr:`pending_bytes` tells a caller that coalesces how much it
    has gathered.
    """

    __slots__ = ("_bodies", "_core", "_finished", "_max_bytes", "_parts", "_size", "events")

    def __init__(self, max_bytes: int, *, use_native: bool = True) -> None:
        """``use_native=False`` keeps to the Python loops even when C is built."""
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self._max_bytes = max_bytes
        self._core: Packer | None = None
        if native is not None and use_native:
            self._core = native.Packer(max_bytes)
        self._bodies: list[bytes] = []
        self._finished = 0  # bytes in _bodies
        self._parts: list[bytes] = []
        self._size = 0
        #: Frames added since the last :meth:`take`.
        self.events = 0

    @property
    def max_bytes(self) -> int:
        """The largest body this packer makes (but for an event alone in its body)."""
        return self._max_bytes

    @property
    def native(self) -> bool:
        """Whether this packer writes through the C loop."""
        return self._core is not None

    @property
    def pending_bytes(self) -> int:
        """Encoded bytes packed since the last :meth:`take`."""
        if self._core is not None:
            return self._finished + self._core.pending_bytes
        return self._finished + self._size

    def add_body(self, body: bytes, events: int) -> None:
        """Append ``body``, a response of ``events`` events packed elsewhere, as it is.

        It comes after everything added before and starts a body of its own;
        what is added next starts a new one.
        """
        self.events += events
        core = self._core
        if core is not None:
            # C keeps its bodies until take(): move them here, to keep the order.
            done = core.take()
            if done:
                self._bodies += done
                self._finished += sum(map(len, done))
        elif self._parts:
            self._finish_body()
        self._bodies.append(body)
        self._finished += len(body)

    def cut(self) -> None:
        """End the body being filled; what is added next starts a new body."""
        if self._core is not None:
            self._core.cut()
        elif self._parts:
            self._finish_body()

    def _finish_body(self) -> None:
        self._bodies.append(b"".join(self._parts))
        self._finished += self._size
        self._parts = []
        self._size = 0

    def add_unit(self, frames: Sequence[Frame], keyspace: str | None = None) -> None:
        """:meth:`add` ``frames`` as one unit: they start a new body (see the module doc).

        A unit that ends ``VGTID, COMMIT`` and does not fit one body keeps
        those two in the same body: a client that takes each response's last
        VGTID as its position (Debezium does) must not get a transaction's
        VGTID in a response without its COMMIT.
        """
        self.cut()
        if len(frames) < 3 or frames[-1].type != _COMMIT or frames[-2].type != _VGTID:
            self.add(frames, keyspace)
            return
        before = self.pending_bytes
        self.add(frames[:-2], keyspace)
        packed = self.pending_bytes - before
        if not closing_pair_fits(packed, frames[-2].raw, frames[-1].raw, self._max_bytes):
            self.cut()
        self.add(frames[-2:], keyspace)

    def add(self, frames: Sequence[Frame], keyspace: str | None = None) -> None:
        """Append ``frames`` in order; with a ``keyspace``, rename FIELD/ROW tables.

        Raises :class:`~vsmux.wire.errors.FrameError` for a FIELD/ROW event
        that is malformed where the name is; the packer's content is then
        unspecified (the caller ends the stream).
        """
        self.events += len(frames)
        core = self._core
        if core is not None:
            prefix = None if keyspace is None else _name_prefix(keyspace)
            done = core.add(frames, prefix, 0)
            while done < len(frames):
                # An event C left to the Python walk (which raises if it is malformed).
                core.add_event(_event_bytes(frames[done], keyspace))
                done = core.add(frames, prefix, done + 1)
        elif keyspace is None:
            self._add_plain(frames)
        else:
            self._add_renamed(frames, keyspace)

    def _add_plain(self, frames: Sequence[Frame]) -> None:
        parts = self._parts
        size = self._size
        max_bytes = self._max_bytes
        prefixes = RECORD_PREFIX
        for frame in frames:
            raw = frame.raw
            n = len(raw)
            prefix = prefixes[n] if n < TABLE_LIMIT else b"\x0a" + encode_varint(n)
            size += len(prefix) + n
            if size > max_bytes and parts:
                self._bodies.append(b"".join(parts))
                self._finished += size - len(prefix) - n
                parts = self._parts = []
                size = len(prefix) + n
            parts.append(prefix)
            parts.append(raw)
        self._size = size

    def _add_renamed(self, frames: Sequence[Frame], keyspace: str) -> None:
        # The body-boundary check is written out in each branch on purpose: this
        # loop runs once per event, and a method call there costs more than the
        # check itself.
        parts = self._parts
        size = self._size
        max_bytes = self._max_bytes
        prefixes = RECORD_PREFIX
        varints = VARINT
        names = name_fields(keyspace)
        renamed = _RENAMED
        try:
            for frame in frames:
                raw = frame.raw
                kind = frame.type
                if kind in renamed:
                    # The usual layout, inline (this runs for every ROW): find
                    # the sub-message's length and the name at its front.
                    match = (_FAST_ROW if kind == ROW else _FAST_FIELD)(raw)
                    if match is not None:
                        name_start = match.end()
                        length = raw[name_start - 3]
                        # A two-byte length when the byte before is a continuation.
                        if raw[name_start - 4] >= 0x80:
                            pos = name_start - 4
                            length = (raw[pos] & 0x7F) | (length << 7)
                        else:
                            pos = name_start - 3
                        name_end = name_start + raw[name_start - 1]
                        # Otherwise the bytes only looked usual: the walk decides.
                        if name_end <= name_start - 2 + length <= len(raw):
                            old = raw[name_start - 2 : name_end]
                            new = names.get(old) or new_name_field(keyspace, old)
                            grow = len(new) - len(old)
                            length += grow
                            new_length = (
                                varints[length] if length < TABLE_LIMIT else encode_varint(length)
                            )
                            n = len(raw) + grow + len(new_length) - (name_start - 2 - pos)
                            prefix = prefixes[n] if n < TABLE_LIMIT else b"\x0a" + encode_varint(n)
                            size += len(prefix) + n
                            if size > max_bytes and parts:
                                self._bodies.append(b"".join(parts))
                                self._finished += size - len(prefix) - n
                                parts = self._parts = []
                                size = len(prefix) + n
                            parts += (prefix, raw[:pos], new_length, new, raw[name_end:])
                            continue
                    pieces = renamed_parts_walk(kind, raw, keyspace)
                    if pieces is not None:
                        n = len(pieces[0]) + len(pieces[1]) + len(pieces[2]) + len(pieces[3])
                        prefix = prefixes[n] if n < TABLE_LIMIT else b"\x0a" + encode_varint(n)
                        size += len(prefix) + n
                        if size > max_bytes and parts:
                            self._bodies.append(b"".join(parts))
                            self._finished += size - len(prefix) - n
                            parts = self._parts = []
                            size = len(prefix) + n
                        parts.append(prefix)
                        parts += pieces
                        continue
                n = len(raw)
                prefix = prefixes[n] if n < TABLE_LIMIT else b"\x0a" + encode_varint(n)
                size += len(prefix) + n
                if size > max_bytes and parts:
                    self._bodies.append(b"".join(parts))
                    self._finished += size - len(prefix) - n
                    parts = self._parts = []
                    size = len(prefix) + n
                parts.append(prefix)
                parts.append(raw)
        finally:
            self._size = size

    def take(self) -> list[bytes]:
        """Every body so far (the last one possibly short); the packer starts empty."""
        if self._core is not None:
            self.events = 0
            if not self._bodies:
                return self._core.take()
            bodies = self._bodies
            bodies += self._core.take()
            self._bodies = []
            self._finished = 0
            return bodies
        if self._parts:
            self._finish_body()
        bodies = self._bodies
        self._bodies = []
        self._finished = 0
        self.events = 0
        return bodies


def pack_responses(
    frames: Sequence[Frame], max_bytes: int, keyspace: str | None = None
) -> list[bytes]:
    """Encoded VStreamResponse bodies holding ``frames`` in order (see :class:`ResponsePacker`).

    Each body is at most ``max_bytes`` long, except that a frame too large to
    fit on its own goes alone in its own body (an event cannot be split; the
    client then decides whether it can take it). No frames give no bodies.
    """
    packer = ResponsePacker(max_bytes)
    packer.add(frames, keyspace)
    return packer.take()


# No body bound when renaming a single frame: it always goes alone.
_UNBOUNDED = 1 << 62


def rename_table(frame: Frame, keyspace: str) -> Frame:
    """``frame`` with its table name prefixed by ``keyspace.`` (FIELD and ROW only).

    Other event types, and FIELD/ROW events without a sub-message, are
    returned unchanged (the same object). The header of the new frame is the
    same as the old one's. Raises :class:`~vsmux.wire.errors.FrameError` for
    malformed bytes.
    """
    kind = frame.type
    if kind not in _RENAMED:
        return frame
    packer = ResponsePacker(_UNBOUNDED)
    packer.add((frame,), keyspace)
    (body,) = packer.take()
    _, start = read_varint(body, 1)
    if len(body) - start == len(frame.raw):
        return frame  # nothing to rename: a rename always adds the prefix's bytes
    return Frame(kind, body[start:], frame._header)
