"""The VGtid position book: every shard's position that reached the client.

The sender owns one book per request and is its only writer. When it hands a
unit to the client it calls :meth:`PositionBook.apply_controls`, which

- records a GTID event's position for its shard and puts in its place a VGTID
  event carrying the whole VGtid (every shard's position);
- applies a LASTPK event to the shard's ``table_p_ks`` (add a table that is
  new and not completed, replace a known one, remove a completed one) and
  likewise puts a VGTID event in its place;
- notes a shard's COPY_COMPLETED and, once every shard of the VGtid has
  copied, appends the final COPY_COMPLETED that names no keyspace or shard.

A journal's convergence replaces its participants by its new shards with
:meth:`PositionBook.replace`. Streamers only read the book: a retry restarts
from :meth:`PositionBook.shard_gtid`, the last position the client has.

This runs once per transaction, so the VGtid is kept encoded: each shard's
``ShardGtid`` bytes are cached and only the shard that moved is re-encoded.
When a shared stream gives one GTID event to many clients, the first book
to read it keeps what it read (the gtid, and the ShardGtid's encoding) in
two small process-wide memos, so the other books skip the read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata
from vsmux.wire import Frame, decode_event
from vsmux.wire.varint import TABLE_LIMIT, VARINT, encode_varint

__all__ = ["COPY_DONE", "PositionBook", "ShardKey", "forget_read_gtids"]

ShardKey = tuple[str, str]  # keyspace, shard

_T = binlogdata.VEventType
_GTID = int(_T.GTID)
_LASTPK = int(_T.LASTPK)
_COPY_COMPLETED = int(_T.COPY_COMPLETED)
_VGTID = int(_T.VGTID)

#: The final COPY_COMPLETED: no keyspace, no shard.
COPY_DONE = Frame(_COPY_COMPLETED, b"\x08" + encode_varint(_COPY_COMPLETED))

_VGTID_HEAD = b"\x08" + encode_varint(_VGTID) + b"\x3a"  # type=VGTID, then field 7


# A GTID event in the usual layout, up to the gtid's bytes: type, an optional
# timestamp, the gtid key and a one- or two-byte length (group 1).
_GTID_LAYOUT = re.compile(
    rb"\x08\x01(?:\x10[\x80-\xff]{0,9}[\x00-\x7f])?\x1a([\x80-\xff]?[\x00-\x7f])", re.DOTALL
).match
# The current_time field (20) that follows the gtid in that layout.
_CURRENT_TIME = re.compile(rb"\xa0\x01[\x80-\xff]{0,9}[\x00-\x7f]", re.DOTALL).match


# GTID events read lately, by their bytes: (gtid, tail) as the usual-layout
# read found them. A shared stream hands one event object to every client
# it feeds, so its bytes are hashed once and each later client skips the
# read; bounded (cleared when full) since positions never repeat.
_READ_GTIDS: dict[bytes, tuple[str, bytes]] = {}
# ShardGtid encodings without table positions, by (keyspace/shard fields, gtid).
_ENCODED: dict[tuple[bytes, str], bytes] = {}
_CACHE_ENTRIES = 1024


def forget_read_gtids() -> None:
    """Empty the memos (the server does when clients have left, so they pin no memory)."""
    _READ_GTIDS.clear()
    _ENCODED.clear()


def _remember(raw: bytes, gtid: str, tail: bytes) -> None:
    if len(_READ_GTIDS) >= _CACHE_ENTRIES:
        _READ_GTIDS.clear()
    _READ_GTIDS[raw] = (gtid, tail)


def _text_field(key: bytes, value: str) -> bytes:
    if not value:
        return b""  # proto3 leaves empty strings out
    data = value.encode()
    return key + encode_varint(len(data)) + data


class _Entry:
    """One shard's position and its cached ``ShardGtid`` encoding."""

    __slots__ = ("_head", "_pks", "encoded", "gtid", "keyspace", "shard", "table_p_ks")

    def __init__(
        self, keyspace: str, shard: str, gtid: str, table_p_ks: list[binlogdata.TableLastPk]
    ) -> None:
        self.keyspace = keyspace
        self.shard = shard
        self.gtid = gtid
        self.table_p_ks = table_p_ks
        # Keyspace and shard never change: their fields are encoded once.
        self._head = _text_field(b"\x0a", keyspace) + _text_field(b"\x12", shard)
        self._pks = b""
        self.encoded = b""
        self.encode_pks()

    def encode_pks(self) -> None:
        self._pks = b"".join(
            b"\x22" + encode_varint(len(b)) + b for b in map(bytes, self.table_p_ks)
        )
        self.encode()

    def encode(self) -> None:
        pks = self._pks
        if not pks:
            key = (self._head, self.gtid)
            encoded = _ENCODED.get(key)
            if encoded is not None:
                self.encoded = encoded
                return
        body = self._head + _text_field(b"\x1a", self.gtid) + pks
        self.encoded = b"\x0a" + encode_varint(len(body)) + body
        if not pks:
            if len(_ENCODED) >= _CACHE_ENTRIES:
                _ENCODED.clear()
            _ENCODED[key] = self.encoded

    def shard_gtid(self) -> binlogdata.ShardGtid:
        return binlogdata.ShardGtid(
            keyspace=self.keyspace,
            shard=self.shard,
            gtid=self.gtid,
            table_p_ks=[binlogdata.TableLastPk.parse(bytes(pk)) for pk in self.table_p_ks],
        )


class PositionBook:
    """Every shard's delivered position, in VGtid order."""

    def __init__(self, shard_gtids: Iterable[binlogdata.ShardGtid]) -> None:
        self._entries: dict[ShardKey, _Entry] = {}
        self._copied: set[ShardKey] = set()
        self._vgtid: bytes | None = None
        # Each entry's encoding in VGtid order, and each key's place in it:
        # a transaction moves one shard, so one slot changes and the VGtid is
        # one join, not a walk over every entry (64 shards made that walk a
        # tenth of the gateway's time). None until first needed after the set
        # of shards changed.
        self._parts: list[bytes] | None = None
        self._slots: dict[ShardKey, int] = {}
        # Encoded keyspace/shard fields of VGTID events, per (keyspace, shard).
        self._tails: dict[tuple[str, str], bytes] = {}
        # GTID event endings (after gtid and current_time) known to be exactly
        # the keyspace and shard fields a VGTID event carries.
        self._known_tails: set[bytes] = set()
        for sg in shard_gtids:
            self._add(sg)

    def _add(self, sg: binlogdata.ShardGtid) -> None:
        key = (sg.keyspace, sg.shard)
        if key in self._entries:
            raise VStreamError(
                Code.INVALID_ARGUMENT,
                f"shard {sg.keyspace}/{sg.shard} appears twice in the vgtid; list each shard once",
            )
        pks = [binlogdata.TableLastPk.parse(bytes(pk)) for pk in sg.table_p_ks]
        self._entries[key] = _Entry(sg.keyspace, sg.shard, sg.gtid, pks)
        self._vgtid = None
        self._parts = None

    # -- reading -------------------------------------------------------------

    def keys(self) -> list[ShardKey]:
        return list(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def shard_gtid(self, key: ShardKey) -> binlogdata.ShardGtid | None:
        """A copy of ``key``'s delivered position, or None if it is not in the book."""
        entry = self._entries.get(key)
        return None if entry is None else entry.shard_gtid()

    def vgtid(self) -> binlogdata.VGtid:
        """The whole VGtid, decoded (for tests and summaries; not the hot path)."""
        return binlogdata.VGtid.parse(self.vgtid_bytes())

    def vgtid_bytes(self) -> bytes:
        """The encoded ``binlogdata.VGtid``."""
        body = self._vgtid
        if body is None:
            parts = self._parts
            if parts is None:
                parts = self._parts = [e.encoded for e in self._entries.values()]
                self._slots = {key: i for i, key in enumerate(self._entries)}
            body = self._vgtid = b"".join(parts)
        return body

    def vgtid_frame(self, keyspace: str, shard: str) -> Frame:
        """A VGTID event with the current VGtid and the given keyspace/shard."""
        body = self._vgtid
        if body is None:
            body = self.vgtid_bytes()
        tail = self._tails.get((keyspace, shard))
        if tail is None:
            tail = self._tail(keyspace, shard)
        return self._vgtid_with_tail(body, tail)

    @staticmethod
    def _vgtid_with_tail(body: bytes, tail: bytes) -> Frame:
        n = len(body)
        length = VARINT[n] if n < TABLE_LIMIT else encode_varint(n)
        return Frame(_VGTID, b"".join((_VGTID_HEAD, length, body, tail)))

    def _tail(self, keyspace: str, shard: str) -> bytes:
        """The encoded keyspace (22) and shard (23) fields of a VGTID event."""
        tail = _text_field(b"\xb2\x01", keyspace) + _text_field(b"\xba\x01", shard)
        if len(self._tails) < 1024:  # bounded: keys come from the stream's shards
            self._tails[keyspace, shard] = tail
        return tail

    # -- the sender's updates ------------------------------------------------

    def _entry(self, key: ShardKey) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            raise VStreamError(
                Code.INTERNAL,
                f"an event of {key[0]}/{key[1]} arrived after the shard left the stream",
            )
        return entry

    def _moved(self, key: ShardKey, entry: _Entry) -> None:
        """``entry`` (of ``key``) was re-encoded: the VGtid must follow."""
        self._vgtid = None
        if self._parts is not None:
            self._parts[self._slots[key]] = entry.encoded

    def set_gtid(self, key: ShardKey, gtid: str) -> None:
        entry = self._entry(key)
        entry.gtid = gtid
        entry.encode()
        self._moved(key, entry)

    def apply_lastpk(self, key: ShardKey, event: binlogdata.LastPkEvent) -> None:
        """Add, replace or remove ``key``'s table position as the event says."""
        entry = self._entry(key)
        table = event.table_last_p_k or binlogdata.TableLastPk()
        pks = entry.table_p_ks
        index = next((i for i, pk in enumerate(pks) if pk.table_name == table.table_name), -1)
        if index < 0:
            if not event.completed:
                pks.append(table)
        elif event.completed:
            del pks[index]
        else:
            pks[index] = table
        entry.encode_pks()
        self._moved(key, entry)

    def copy_completed(self, key: ShardKey) -> bool:
        """Note ``key``'s copy as done; True once every shard in the book is done."""
        self._copied.add(key)
        return all(k in self._copied for k in self._entries)

    def apply_controls(self, frames: list[Frame], controls: list[int], key: ShardKey) -> None:
        """Apply a unit's GTID/LASTPK/COPY_COMPLETED events (see the module doc).

        ``frames`` is changed in place: GTID and LASTPK become VGTID events, and
        the final COPY_COMPLETED is inserted after the shard's own.
        """
        inserted = 0
        for index in controls:
            index += inserted
            frame = frames[index]
            kind = frame.type
            if kind == _GTID:
                frames[index] = self.gtid_vgtid(frame, key)
            elif kind == _LASTPK:
                event = decode_event(frame)
                self.apply_lastpk(key, event.last_p_k_event or binlogdata.LastPkEvent())
                frames[index] = self.vgtid_frame(event.keyspace, event.shard)
            elif kind == _COPY_COMPLETED and self.copy_completed(key):
                frames.insert(index + 1, COPY_DONE)
                inserted += 1

    def gtid_vgtid(self, frame: Frame, key: ShardKey) -> Frame:
        """Record a GTID event's position; the VGTID event that replaces it.

        The usual layout (type, timestamp, gtid, current_time, keyspace,
        shard) is read with two C regex matches and slices, and the event's
        own keyspace/shard bytes become the VGTID's, once a full header read
        has shown them to be exactly that; anything else reads the header.
        Either read is remembered by the event's bytes, for the next book.
        """
        raw = frame.raw
        read = _READ_GTIDS.get(raw)
        if read is not None:
            # A tail in the memo is exactly the event's keyspace/shard fields
            # (a header read showed it, or built it from the header's names).
            self.set_gtid(key, read[0])
            body = self._vgtid
            if body is None:
                body = self.vgtid_bytes()
            return self._vgtid_with_tail(body, read[1])
        match = _GTID_LAYOUT(raw)
        if match is not None:
            start = match.end()
            length_bytes = match.group(1)
            length = length_bytes[0]
            if len(length_bytes) == 2:
                length = (length & 0x7F) | (length_bytes[1] << 7)
            end = start + length
            current = _CURRENT_TIME(raw, end)
            tail = raw[current.end() if current is not None else end :]
            if end <= len(raw) and tail in self._known_tails:
                try:
                    gtid = raw[start:end].decode()
                except UnicodeDecodeError:
                    pass  # the header read reports it
                else:
                    _remember(raw, gtid, tail)
                    self.set_gtid(key, gtid)
                    body = self._vgtid
                    if body is None:
                        body = self.vgtid_bytes()
                    return self._vgtid_with_tail(body, tail)
        header = frame.header()
        self.set_gtid(key, header.gtid)
        vgtid = self.vgtid_frame(header.keyspace, header.shard)
        # Events in another layout (the simulator's put current_time last)
        # are read once too.
        names = self._tails.get((header.keyspace, header.shard))
        if names is not None:
            _remember(raw, header.gtid, names)
        if match is not None and len(self._known_tails) < 1024:  # bounded like _tails
            known = self._tails.get((header.keyspace, header.shard))
            if known is not None and raw.endswith(known) and header.gtid:
                self._known_tails.add(known)
        return vgtid

    def replace(
        self, participants: Iterable[ShardKey], shard_gtids: Iterable[binlogdata.ShardGtid]
    ) -> None:
        """A journal's convergence: drop ``participants``, append the new shards."""
        for key in participants:
            self._entries.pop(key, None)
            self._copied.discard(key)
        for sg in shard_gtids:
            self._add(sg)
        self._vgtid = None
        self._parts = None
