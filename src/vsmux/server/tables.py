"""Where ``SHOW TABLES`` gets its table names.

vsmux has no SQL connection to the shards, so it does not probe MySQL. The
table names come from a catalog built at start-up:

- simulated keyspaces: the simulated cluster's schema (exact, always current);
- keyspaces of real tablets: the ``tables = [...]`` list of the keyspace in
  the topology file, when given; with an etcd topology, the cell's
  SrvVSchema (read at each query, so it follows the cluster). Without one, ``SHOW TABLES`` answers
  FAILED_PRECONDITION naming the keyspace and the fix, rather than guessing
  from a copy-phase VStream (which would start copying a table to learn its
  name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from vsmux.errors import Code, VStreamError

if TYPE_CHECKING:
    from vsmux.sources import SimulatedCluster
    from vsmux.topology import Topology

__all__ = ["ClusterTableCatalog", "StaticTableCatalog", "TopologyTableCatalog"]


class StaticTableCatalog:
    """Table names per keyspace, fixed or refreshed by the caller."""

    def __init__(self, tables: Mapping[str, Sequence[str]] | None = None) -> None:
        self._tables: dict[str, list[str]] = {k: list(v) for k, v in (tables or {}).items()}

    def set_tables(self, keyspace: str, tables: Sequence[str]) -> None:
        self._tables[keyspace] = list(tables)

    async def table_names(self, keyspace: str) -> list[str]:
        """The keyspace's tables; FAILED_PRECONDITION if none are known. Never waits."""
        try:
            return list(self._tables[keyspace])
        except KeyError:
            raise VStreamError(
                Code.FAILED_PRECONDITION,
                f"table names of keyspace {keyspace!r} are unknown to vsmux: list them as "
                f"tables = [...] under the keyspace in the topology file",
            ) from None


class ClusterTableCatalog:
    """Table names from a simulated cluster's schema, read at each query.

    Simulated keyspaces answer from the schema of their first serving shard
    (every shard of a keyspace has the same tables); other keyspaces fall
    back to ``fallback``.
    """

    def __init__(self, cluster: SimulatedCluster, fallback: StaticTableCatalog) -> None:
        self._cluster = cluster
        self._fallback = fallback

    async def table_names(self, keyspace: str) -> list[str]:
        """Never waits."""
        info = self._cluster.topology.keyspaces.get(keyspace)
        if info is None or not info.shards:
            return await self._fallback.table_names(keyspace)
        return sorted(self._cluster.shard_log(keyspace, info.shards[0]).schemas)


class TopologyTableCatalog:
    """Table names from a live topology's keyspaces (an etcd cluster's SrvVSchema)."""

    def __init__(self, topology: Topology) -> None:
        self._topology = topology

    async def table_names(self, keyspace: str) -> list[str]:
        """The keyspace's tables; FAILED_PRECONDITION if the SrvVSchema names none. Never waits."""
        info = self._topology.keyspaces.get(keyspace)
        if info is None or info.tables is None:
            raise VStreamError(
                Code.FAILED_PRECONDITION,
                f"table names of keyspace {keyspace!r} are unknown to vsmux: the cell's "
                f"SrvVSchema has no tables for it (vtctldclient RebuildVSchemaGraph writes it)",
            )
        return list(info.tables)
