"""Topology data model.

A :class:`Topology` is mutable: the simulated cluster changes the serving
shards of a keyspace when it reshards, and the gateway reads the current
state whenever it resolves a request or picks a tablet. All access happens
from the Trio thread, so no locking is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, SupportsIndex

from vsmux.proto.topodata import TabletType

__all__ = ["KeyRange", "KeyspaceInfo", "TabletInfo", "TabletList", "Topology"]


def tablet_alias(cell: str, uid: int) -> str:
    """A tablet's alias as Vitess writes it: ``zone1-0000000101``."""
    return f"{cell}-{uid:010d}"


@dataclass(frozen=True, slots=True)
class KeyRange:
    """A half-open range of keyspace ids, ``start <= id < end``; b"" is unbounded."""

    start: bytes
    end: bytes

    @classmethod
    def parse(cls, shard: str) -> KeyRange:
        """Parse a shard name such as ``-80``, ``80-c0`` or ``0`` (the whole range)."""
        if shard in ("0", "-"):
            return cls(b"", b"")
        if shard.count("-") != 1:
            raise ValueError(f"shard name {shard!r} is not a key range like '-80' or '80-'")
        lo, hi = shard.split("-")
        try:
            return cls(bytes.fromhex(lo), bytes.fromhex(hi))
        except ValueError:
            raise ValueError(f"shard name {shard!r} has a bound that is not hex") from None

    def contains(self, keyspace_id: bytes) -> bool:
        return keyspace_id >= self.start and (self.end == b"" or keyspace_id < self.end)


@dataclass(frozen=True, slots=True)
class TabletInfo:
    """One tablet as the topology knows it.

    ``address`` is ``host:port`` of a real (or gRPC-served simulated) tablet;
    ``None`` means an in-process simulated tablet.
    """

    keyspace: str
    shard: str
    cell: str
    uid: int
    tablet_type: TabletType
    address: str | None = None

    @property
    def alias(self) -> str:
        """The Vitess alias, e.g. ``zone1-0000000101``."""
        return tablet_alias(self.cell, self.uid)


@dataclass(slots=True)
class KeyspaceInfo:
    """One keyspace: its serving shards, and the table names SHOW TABLES lists.

    ``tables`` is None when the topology names no tables for the keyspace
    (SHOW TABLES then asks the tablets, or answers with none).
    """

    name: str
    shards: list[str]  # serving shards, in order
    tables: list[str] | None = None
    # False: this keyspace's shard streams never share a tablet stream (``share = false``).
    share: bool = True


_Shard = tuple[str, str]


class TabletList(list[TabletInfo]):
    """A list of tablets that can answer "which tablets serve this shard" in O(1).

    Every pick of a tablet asks that question; scanning all tablets for it
    made each pick cost O(tablets), which a 100k-tablet topology cannot
    afford. The index is built on first use and dropped by every method that
    changes the list, so callers keep using it as a plain list (append,
    extend, slice assignment) and the answer is never stale.
    """

    __slots__ = ("_by_shard",)

    def __init__(self, tablets: Iterable[TabletInfo] = ()) -> None:
        super().__init__(tablets)
        self._by_shard: dict[_Shard, list[TabletInfo]] | None = None

    def serving(self, keyspace: str, shard: str) -> list[TabletInfo]:
        """The tablets of ``keyspace/shard`` in list order (a new list each call)."""
        index = self._by_shard
        if index is None:
            index = {}
            for tablet in self:
                index.setdefault((tablet.keyspace, tablet.shard), []).append(tablet)
            self._by_shard = index
        return list(index.get((keyspace, shard), ()))

    # Every mutator of list drops the index.
    def append(self, tablet: TabletInfo) -> None:
        self._by_shard = None
        super().append(tablet)

    def extend(self, tablets: Iterable[TabletInfo]) -> None:
        self._by_shard = None
        super().extend(tablets)

    def insert(self, index: SupportsIndex, tablet: TabletInfo) -> None:
        self._by_shard = None
        super().insert(index, tablet)

    def remove(self, tablet: TabletInfo) -> None:
        self._by_shard = None
        super().remove(tablet)

    def pop(self, index: SupportsIndex = -1) -> TabletInfo:
        self._by_shard = None
        return super().pop(index)

    def clear(self) -> None:
        self._by_shard = None
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._by_shard = None
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._by_shard = None
        super().reverse()

    def __setitem__(self, index: Any, value: Any) -> None:
        self._by_shard = None
        super().__setitem__(index, value)

    def __delitem__(self, index: Any) -> None:
        self._by_shard = None
        super().__delitem__(index)

    def __iadd__(self, tablets: Iterable[TabletInfo]) -> TabletList:  # type: ignore[override,misc]
        self._by_shard = None
        super().__iadd__(tablets)
        return self

    def __imul__(self, count: SupportsIndex) -> TabletList:
        self._by_shard = None
        super().__imul__(count)
        return self


@dataclass(slots=True)
class Topology:
    """Keyspaces with their serving shards, and every known tablet.

    ``tablets`` is a :class:`TabletList`; a plain list given to the
    constructor or assigned later is wrapped on next use.
    """

    cell: str
    keyspaces: dict[str, KeyspaceInfo] = field(default_factory=dict)
    tablets: list[TabletInfo] = field(default_factory=TabletList)
    #: The file's ``[failover_buffer]`` table, as GatewaySettings field names
    #: (``failover_window``, ...) to values; empty when the file has none.
    failover_buffer: dict[str, float | bool] = field(default_factory=dict)
    #: Vitess cell aliases: an alias name to the cells it groups, in the
    #: order given. A cell is in at most one alias. The tablet picker treats
    #: the cells of the gateway's own alias as local, and expands an alias
    #: named in a request's cells (``vsmux.core.picking``).
    cells_aliases: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._indexed()

    def _indexed(self) -> TabletList:
        tablets = self.tablets
        if not isinstance(tablets, TabletList):
            tablets = self.tablets = TabletList(tablets)
        return tablets

    def keyspace_names(self) -> list[str]:
        return sorted(self.keyspaces)

    def table_lists(self) -> dict[str, list[str]]:
        """The table names given per keyspace, for keyspaces that have a list."""
        return {
            name: list(info.tables)
            for name, info in self.keyspaces.items()
            if info.tables is not None
        }

    def serving_shards(self, keyspace: str) -> list[str]:
        """Serving shards of ``keyspace`` in order; KeyError if it is unknown."""
        return list(self.keyspaces[keyspace].shards)

    def tablets_for(self, keyspace: str, shard: str) -> list[TabletInfo]:
        """Tablets of ``keyspace/shard`` in topology order, from the index."""
        return self._indexed().serving(keyspace, shard)

    def has_shard(self, keyspace: str, shard: str) -> bool:
        """True if any tablet serves ``keyspace/shard`` (serving or not yet/no longer)."""
        return bool(self._indexed().serving(keyspace, shard))
