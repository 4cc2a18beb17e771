"""Which tablet the shard streams that share went to last.

For replica types a shard may have several tablets, and each request's
picker shuffles them to spread load. Streams that share feeds must instead
meet on one tablet: the pickers of sharing requests (see
:class:`vsmux.mux.picking_wait.TabletPicker`) hold the shard's lock while
they pick, try the tablet the last pick chose first, and record their
choice. After that tablet fails, the first retry's choice becomes everyone's.
"""

from __future__ import annotations

import trio

__all__ = ["TabletAffinity"]


class TabletAffinity:
    """The tablet each (keyspace, shard, tablet type) last went to, and a pick lock."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, int], str] = {}
        self._locks: dict[tuple[str, str, int], trio.Lock] = {}

    def preferred(self, keyspace: str, shard: str, tablet_type: int) -> str | None:
        return self._last.get((keyspace, shard, int(tablet_type)))

    def picked(self, keyspace: str, shard: str, tablet_type: int, alias: str) -> None:
        self._last[(keyspace, shard, int(tablet_type))] = alias

    def lock(self, keyspace: str, shard: str, tablet_type: int) -> trio.Lock:
        """Held around a pick, so concurrent picks of a shard agree on the tablet."""
        key = (keyspace, shard, int(tablet_type))
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = trio.Lock()
        return lock
