"""Where ``SHOW TABLES`` gets its table names.

vsmux has no SQL connection to the shards, so it does not probe MySQL. The
table names come from a catalog built at start-up:

- simulated keyspaces: the simulated cluster's schema (exact, always current);
- keyspaces of real tablets: the ``tables = [...]`` list of the keyspace in
  the topology file, when given. Without one, ``SHOW TABLES`` answers
  FAILED_PRECONDITION naming the keyspace and the fix, rather than guessing
  from a copy-phase VStream (which would start copying a table to learn its
  name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vsmux.errors import Code, VStreamError

__all__ = ["StaticTableCatalog"]


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
