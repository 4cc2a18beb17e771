"""A transaction packed once for every client of a shared stream.

A client response holds one unit, and two clients of one feed get the same
unit in the same bytes but for one event: the VGTID, which carries each
client's own position over all its shards. A :class:`PreparedUnit` is such a
unit packed once, around that hole: the response's records before the GTID
event (tables already renamed ``keyspace.table``) and after it. The sender
turns the GTID into the client's VGTID and joins the three
(:meth:`PreparedUnit.body`); the result is byte for byte what packing the
unit on its own would give (``tests/core/test_prepared.py``).

Only the common unit is prepared: a transaction with exactly one GTID and
no LASTPK, COPY_COMPLETED or JOURNAL, that fits one response. Any other
unit goes the usual way.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsmux.proto import binlogdata
from vsmux.wire import Frame, ResponsePacker
from vsmux.wire.frames import RECORD_PREFIX, type_indexes, type_mask
from vsmux.wire.pack import closing_pair_fits
from vsmux.wire.varint import TABLE_LIMIT, encode_varint

__all__ = ["PreparedUnit", "prepare_unit", "unprepared"]

_T = binlogdata.VEventType
_GTID = int(_T.GTID)
_COMMIT = int(_T.COMMIT)
# Events that make a unit more than "records, one GTID, records".
_CONTROLS = type_mask({_GTID, int(_T.LASTPK), int(_T.COPY_COMPLETED), int(_T.JOURNAL)})


@dataclass(slots=True, frozen=True, eq=False)
class PreparedUnit:
    """One unit packed around its GTID event; see the module docstring."""

    #: The unit's events as the tablet sent them (never changed).
    frames: list[Frame]
    #: Where the GTID event is in ``frames``.
    gtid_index: int
    #: Encoded response records of the events before and after the GTID.
    head: bytes
    tail: bytes
    #: The largest response the unit may make.
    max_bytes: int
    #: The closing COMMIT's bytes when the unit ends ``GTID, COMMIT`` (the
    #: packer keeps the VGTID and COMMIT of such a unit in one response).
    commit: bytes | None

    @property
    def gtid(self) -> Frame:
        return self.frames[self.gtid_index]

    def body(self, vgtid: Frame) -> bytes | None:
        """The unit's response with ``vgtid`` in place of its GTID, or None.

        None when packing the unit alone would not make one response of it:
        it is too large, or the packer would cut before its closing VGTID
        and COMMIT (:func:`~vsmux.wire.pack.closing_pair_fits`).
        """
        raw = vgtid.raw
        n = len(raw)
        prefix = RECORD_PREFIX[n] if n < TABLE_LIMIT else b"\x0a" + encode_varint(n)
        if len(self.head) + len(prefix) + n + len(self.tail) > self.max_bytes:
            return None
        commit = self.commit
        if commit is not None and not closing_pair_fits(
            len(self.head), raw, commit, self.max_bytes
        ):
            return None
        return b"".join((self.head, prefix, raw, self.tail))

    def with_vgtid(self, vgtid: Frame) -> list[Frame]:
        """The unit's events with ``vgtid`` in place of its GTID (a new list)."""
        frames = list(self.frames)
        frames[self.gtid_index] = vgtid
        return frames


def prepare_unit(frames: list[Frame], keyspace: str, max_bytes: int) -> PreparedUnit | None:
    """``frames`` (one whole unit) prepared for clients of ``keyspace``, or None.

    None when the unit is not the common one (see the module docstring).
    Raises :class:`~vsmux.wire.errors.FrameError` for a FIELD or ROW event
    malformed where its table name is.
    """
    controls = type_indexes(frames, _CONTROLS)
    if len(controls) != 1 or frames[controls[0]].type != _GTID:
        return None
    index = controls[0]
    packer = ResponsePacker(max_bytes)
    packer.add(frames[:index], keyspace)
    head = b"".join(packer.take())
    packer.add(frames[index + 1 :], keyspace)
    tail = b"".join(packer.take())
    if len(head) + len(tail) >= max_bytes:
        return None
    last = frames[-1]
    commit = last.raw if index == len(frames) - 2 and last.type == _COMMIT else None
    return PreparedUnit(frames, index, head, tail, max_bytes, commit)


def unprepared(batch: list[list[Frame] | PreparedUnit]) -> list[Frame]:
    """The events of ``batch`` in order, prepared units as their tablet's events."""
    out: list[Frame] = []
    for part in batch:
        out += part.frames if isinstance(part, PreparedUnit) else part
    return out
