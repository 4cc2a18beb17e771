"""One consumer's place in a feed, and what it reads from there.

A :class:`FeedReader` is a cursor into a :class:`~vsmux.core.feed_ring.FeedRing`
plus what the consumer still lacks to read the stream as if it were its own:

- the FIELDs the feed sent before the consumer joined, for tables it has not
  had one for since. Each goes in front of the consumer's first ROW of that
  table (a FIELD for the table in the stream itself makes it unnecessary),
  which is where the tablet would have put it on a stream of the consumer's
  own. A FIELD the consumer already had may come again: harmless, as after
  any reconnect;
- heartbeats: a caught-up reader passes on the latest one once, so a consumer
  of an idle feed keeps hearing from its tablet.

:meth:`FeedReader.read` returns the events of whole units only, so a
consumer can leave the feed (or join it) between any two reads and continue
from :attr:`FeedReader.position` with nothing lost or repeated.
"""

from __future__ import annotations

from collections.abc import Mapping

from vsmux.core.feed_ring import FIELD, ROW, FeedEntry, FeedRing
from vsmux.wire import Frame
from vsmux.wire.tables import table_of

__all__ = ["FeedReader"]


class FeedReader:
    """A consumer's cursor in a feed: the next entry to read and its position.

    ``position`` is the position before entry ``cursor`` (where the consumer
    joined); ``missing`` the FIELDs in force there (see the module docstring).
    """

    def __init__(
        self, cursor: int, position: str, missing: Mapping[bytes, Frame], heartbeats: int
    ) -> None:
        self.cursor = cursor
        #: The position after the last unit read.
        self.position = position
        self._missing = dict(missing)
        self._heartbeats = heartbeats

    def behind(self, ring: FeedRing) -> int:
        """Entries kept in ``ring`` that this reader has not read yet."""
        return ring.head - self.cursor

    def read(self, ring: FeedRing, max_bytes: int) -> list[Frame]:
        """The events of the next whole units (about ``max_bytes``), or a heartbeat.

        Empty when there is nothing new. The cursor must still be kept
        (``cursor >= ring.tail``): the feed detaches a reader before it
        drops an entry the reader needs.
        """
        out: list[Frame] = []
        for part in self.read_parts(ring, max_bytes):
            out += part.frames if isinstance(part, FeedEntry) else part
        return out

    def read_parts(self, ring: FeedRing, max_bytes: int) -> list[FeedEntry | list[Frame]]:
        """:meth:`read`, unit by unit: a kept entry as it is, or the events read in its place.

        An entry comes as itself when the consumer reads it unchanged; as a
        new list of events when missing FIELDs go in front of its rows. A
        heartbeat comes as a one-event list. Nobody may change an entry's
        ``frames``.
        """
        if self.cursor >= ring.head:
            if ring.heartbeats > self._heartbeats and ring.last_heartbeat is not None:
                self._heartbeats = ring.heartbeats
                return [[ring.last_heartbeat]]
            return []
        if self.cursor < ring.tail:
            raise IndexError(f"entry {self.cursor} was dropped (kept from {ring.tail})")
        self._heartbeats = ring.heartbeats
        entries = ring.entries(self.cursor, max_bytes)
        out: list[FeedEntry | list[Frame]] = []
        missing = self._missing
        for entry in entries:
            if missing and (
                entry.field_tables or not missing.keys().isdisjoint(entry.row_tables())
            ):
                out.append(self._with_fields(entry))
            else:
                out.append(entry)
            if entry.position is not None:
                self.position = entry.position
        self.cursor = entries[-1].seq + 1
        return out

    def _with_fields(self, entry: FeedEntry) -> list[Frame]:
        """``entry``'s events with the consumer's missing FIELDs put in front of rows."""
        missing = self._missing
        out: list[Frame] = []
        for frame in entry.frames:
            kind = frame.type
            if kind == FIELD:
                missing.pop(table_of(frame), None)
            elif kind == ROW and missing:
                field = missing.pop(table_of(frame), None)
                if field is not None:
                    out.append(field)
            out.append(frame)
        return out
