"""Topology data model.

A :class:`Topology` is mutable: the simulated cluster changes the serving
shards of a keyspace when it reshards, and the gateway reads the current
state whenever it resolves a request or picks a tablet. All access happens
from the Trio thread, so no locking is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vsmux.proto.topodata import TabletType

__all__ = ["KeyRange", "KeyspaceInfo", "TabletInfo", "Topology"]


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
        return f"{self.cell}-{self.uid:010d}"


@dataclass(slots=True)
class KeyspaceInfo:
    name: str
    shards: list[str]  # serving shards, in order


@dataclass(slots=True)
class Topology:
    """Keyspaces with their serving shards, and every known tablet."""

    cell: str
    keyspaces: dict[str, KeyspaceInfo] = field(default_factory=dict)
    tablets: list[TabletInfo] = field(default_factory=list)

    def keyspace_names(self) -> list[str]:
        return sorted(self.keyspaces)

    def serving_shards(self, keyspace: str) -> list[str]:
        """Serving shards of ``keyspace`` in order; KeyError if it is unknown."""
        return list(self.keyspaces[keyspace].shards)

    def tablets_for(self, keyspace: str, shard: str) -> list[TabletInfo]:
        return [t for t in self.tablets if t.keyspace == keyspace and t.shard == shard]

    def has_shard(self, keyspace: str, shard: str) -> bool:
        """True if any tablet serves ``keyspace/shard`` (serving or not yet/no longer)."""
        return any(t.keyspace == keyspace and t.shard == shard for t in self.tablets)
