"""A whole simulated Vitess cluster in one process.

:class:`SimulatedCluster` owns, per keyspace, one :class:`ShardLog` per shard
(a simulated MySQL server) and the :class:`SimulatedTablet` objects serving
it, and keeps a live :class:`Topology` the gateway reads. It is the
:class:`SourceDirectory` for its tablets (``source_for``).

Writes are synchronous: :meth:`SimulatedCluster.execute` applies statements
as one transaction per shard touched (a cross-shard transaction commits on
each shard separately, as in Vitess), and wakes waiting streams.
:meth:`~SimulatedCluster.apply_random_transactions` draws them from a seeded
:class:`WorkloadGenerator`; :meth:`~SimulatedCluster.run_workload` does so
at a rate with ``trio.sleep`` (so it runs under a mock clock).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import trio

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, topodata
from vsmux.sources.simulated.binlog import (
    DEFAULT_RETENTION_BYTES,
    DEFAULT_RETENTION_SECONDS,
    Change,
    ShardLog,
)
from vsmux.sources.simulated.clock import SimClock
from vsmux.sources.simulated.routing import check_partition, keyspace_id, shard_for
from vsmux.sources.simulated.rows import RowImage
from vsmux.sources.simulated.tablet import SimulatedTablet
from vsmux.sources.simulated.workload import (
    DEFAULT_MAX_TABLE_ROWS,
    Alter,
    Delete,
    Key,
    Statement,
    Upsert,
    WorkloadGenerator,
)
from vsmux.topology.model import KeyRange, KeyspaceInfo, TabletInfo, Topology

__all__ = ["SimulatedCluster", "TableContents"]

# table -> primary-key tuple (raw text values) -> column -> raw value or None
TableContents = dict[str, dict[Key, dict[str, bytes | None]]]

_TYPE_NAMES = {
    "primary": topodata.TabletType.PRIMARY,
    "replica": topodata.TabletType.REPLICA,
    "rdonly": topodata.TabletType.RDONLY,
}

# How often run_workload wakes up at most; each wake applies every
# transaction that fell due, so high rates do not mean tiny sleeps.
_WORKLOAD_TICK = 0.01


class _KeyIndex:
    """Keys of one table in insertion order with O(1) add, remove and random pick."""

    def __init__(self) -> None:
        self._keys: list[Key] = []
        self._where: dict[Key, int] = {}

    def add(self, key: Key) -> None:
        if key not in self._where:
            self._where[key] = len(self._keys)
            self._keys.append(key)

    def remove(self, key: Key) -> None:
        index = self._where.pop(key, None)
        if index is None:
            return
        last = self._keys.pop()
        if index < len(self._keys):
            self._keys[index] = last
            self._where[last] = index

    def __len__(self) -> int:
        return len(self._keys)

    def pick(self, rng: random.Random) -> Key | None:
        return self._keys[rng.randrange(len(self._keys))] if self._keys else None


@dataclass(slots=True)
class _Keyspace:
    name: str
    serving: list[str]
    logs: dict[str, ShardLog] = field(default_factory=dict)
    keys: dict[str, _KeyIndex] = field(default_factory=dict)
    next_ids: dict[str, int] = field(default_factory=dict)
    generation: int = 0

    def ranges(self) -> list[tuple[str, KeyRange]]:
        return [(s, KeyRange.parse(s)) for s in self.serving]

    # KeyspaceView for the workload generator
    def random_key(self, table: str, rng: random.Random) -> Key | None:
        return self.keys[table].pick(rng)

    def next_id(self, table: str) -> int:
        self.next_ids[table] = self.next_ids.get(table, 0) + 1
        return self.next_ids[table]

    def row_count(self, table: str) -> int:
        return len(self.keys[table])


class SimulatedCluster:
    """Simulated keyspaces, shards and tablets; see the module docstring."""

    def __init__(
        self,
        topology: Topology,
        *,
        seed: int,
        clock: SimClock,
        tablet_types: Sequence[topodata.TabletType],
        retention_bytes: int,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        workload: WorkloadGenerator,
    ) -> None:
        self.topology = topology
        self.clock = clock
        self.seed = seed
        self.workload = workload
        self._rng = random.Random(seed)
        self._tablet_types = tuple(tablet_types)
        self._retention = retention_bytes
        self._retention_seconds = retention_seconds
        self._keyspaces: dict[str, _Keyspace] = {}
        self._tablets: dict[tuple[str, str, topodata.TabletType], SimulatedTablet] = {}
        self._by_alias: dict[str, SimulatedTablet] = {}
        self._next_uid = 100
        self._partial = False

    @classmethod
    def build(
        cls,
        keyspaces: Mapping[str, Sequence[str]] | None = None,
        *,
        cell: str = "zone1",
        seed: int = 0,
        tablet_types: Sequence[str | topodata.TabletType] = ("primary",),
        retention_bytes: int = DEFAULT_RETENTION_BYTES,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        clock: SimClock | None = None,
        ddl_probability: float = 0.005,
        large_probability: float = 0.002,
        large_rows: tuple[int, int] = (2000, 5000),
        max_table_rows: int | None = DEFAULT_MAX_TABLE_ROWS,
        first_uid: int = 100,
        partial: bool = False,
    ) -> SimulatedCluster:
        """A cluster with one tablet of each of ``tablet_types`` per shard.

        ``keyspaces`` maps keyspace names to serving shards (default
        ``{"commerce": ["-80", "80-"]}``). Tablet uids count up from
        ``first_uid`` in keyspace, shard, type order. Same seed, same calls:
        same data. ``partial`` allows shards that do not cover the whole key
        space (one tablet of a bigger keyspace); rows outside them are dropped.

        Memory stays bounded however long the workload runs: each shard's
        binlog keeps ``retention_seconds`` and at most ``retention_bytes``
        (see :mod:`.binlog`), and the workload archives rows of a table that
        holds more than ``max_table_rows`` in a keyspace (None: tables grow).
        """
        spec = dict(keyspaces or {"commerce": ["-80", "80-"]})
        types = [_TYPE_NAMES[t] if isinstance(t, str) else t for t in tablet_types]
        if not types:
            raise ValueError("tablet_types is empty: every shard needs at least one tablet")
        cluster = cls(
            Topology(cell=cell),
            seed=seed,
            clock=clock or SimClock(),
            tablet_types=types,
            retention_bytes=retention_bytes,
            retention_seconds=retention_seconds,
            workload=WorkloadGenerator(
                random.Random(f"{seed}:workload"),
                ddl_probability=ddl_probability,
                large_probability=large_probability,
                large_rows=large_rows,
                max_rows=max_table_rows,
            ),
        )
        cluster._next_uid = first_uid
        cluster._partial = partial
        for name, shards in spec.items():
            for shard in shards:
                KeyRange.parse(shard)  # ValueError naming a bad shard
            problem = None if partial else check_partition(list(shards))
            if problem is not None:
                raise ValueError(f"keyspace {name!r}: {problem}")
            state = _Keyspace(name, list(shards))
            state.keys = {t: _KeyIndex() for t in ("customer", "corder", "product")}
            cluster._keyspaces[name] = state
            cluster.topology.keyspaces[name] = KeyspaceInfo(name, list(shards))
            for shard in shards:
                cluster._add_shard(state, shard)
        return cluster

    # -- lookups -------------------------------------------------------------

    def source_for(self, tablet: TabletInfo) -> SimulatedTablet:
        """The simulated tablet behind ``tablet`` (KeyError if it is not ours)."""
        return self._by_alias[tablet.alias]

    def tablet(
        self,
        keyspace: str,
        shard: str,
        tablet_type: topodata.TabletType = topodata.TabletType.PRIMARY,
    ) -> SimulatedTablet:
        return self._tablets[(keyspace, shard, tablet_type)]

    def tablets(self) -> list[SimulatedTablet]:
        return list(self._tablets.values())

    def shard_log(self, keyspace: str, shard: str) -> ShardLog:
        return self._keyspaces[keyspace].logs[shard]

    def position(self, keyspace: str, shard: str) -> str:
        return self._keyspaces[keyspace].logs[shard].position()

    def table_contents(self, keyspace: str) -> TableContents:
        """Ground truth over the keyspace's serving shards.

        ``{table: {pk_tuple: {column: value}}}`` where ``pk_tuple`` holds the
        primary-key columns' raw MySQL text values as ``bytes`` (e.g.
        ``(b"42",)``; binary keys as their raw bytes) and every value is the
        column's raw text form as ``bytes``, or ``None`` for NULL. Every demo
        table is present, empty ones as ``{}``.
        """
        state = self._keyspaces[keyspace]
        result: TableContents = {}
        for shard in state.serving:
            log = state.logs[shard]
            for table, rows in log.tables.items():
                names = log.schemas[table].column_names
                merged = result.setdefault(table, {})
                for key, values in rows.items():
                    merged[key] = dict(zip(names, values, strict=True))
        return result

    # -- writes ---------------------------------------------------------------

    def apply_random_transactions(self, n: int, keyspace: str | None = None) -> None:
        """Commit ``n`` workload transactions (to ``keyspace``, else a random one)."""
        names = sorted(self._keyspaces)
        for _ in range(n):
            name = keyspace or self._rng.choice(names)
            self.execute(name, *self.workload.next_transaction(self._keyspaces[name]))

    async def run_workload(
        self,
        rate_per_second: float,
        *,
        keyspace: str | None = None,
        max_transactions: int | None = None,
    ) -> None:
        """Apply transactions at ``rate_per_second`` until cancelled (or the max)."""
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        interval = max(1.0 / rate_per_second, _WORKLOAD_TICK)
        start = trio.current_time()
        done = 0
        while max_transactions is None or done < max_transactions:
            due = int((trio.current_time() - start) * rate_per_second) + 1 - done
            if max_transactions is not None:
                due = min(due, max_transactions - done)
            if due > 0:
                self.apply_random_transactions(due, keyspace)
                done += due
            await trio.sleep(interval)

    def execute(self, keyspace: str, *statements: Statement) -> list[str]:
        """Apply ``statements`` as one transaction; the positions committed.

        An :class:`Alter` must be the only statement; it runs on every serving
        shard. Rows go to the shard owning their key; each shard touched
        commits its part as one GTID.
        """
        state = self._keyspaces[keyspace]
        timestamp = self.clock.seconds()
        if any(isinstance(s, Alter) for s in statements):
            if len(statements) != 1 or not isinstance(statements[0], Alter):
                raise ValueError("an Alter must be the only statement of its transaction")
            return self._alter(state, statements[0], timestamp)
        ranges = state.ranges()
        per_shard: dict[str, list[Change]] = {}
        pending: dict[tuple[str, str, Key], RowImage | None] = {}
        for statement in statements:
            assert not isinstance(statement, Alter)
            schema = state.logs[state.serving[0]].schemas[statement.table]
            names = schema.column_names
            if isinstance(statement, Upsert):
                values = tuple(statement.values.get(c) for c in names)
                key = schema.pk_of(values)
            else:
                key = statement.key
            try:
                shard = shard_for(key, ranges)
            except LookupError:
                if self._partial:
                    continue  # the row lives on a shard this process does not simulate
                raise
            log = state.logs[shard]
            slot = (shard, statement.table, key)
            before = pending[slot] if slot in pending else log.tables[statement.table].get(key)
            if isinstance(statement, Delete):
                if before is None:
                    continue
                after: RowImage | None = None
                state.keys[statement.table].remove(key)
            else:
                merged = dict(zip(names, before or (), strict=False))
                merged.update(statement.values)
                after = tuple(merged.get(c) for c in names)
                state.keys[statement.table].add(key)
            pending[slot] = after
            per_shard.setdefault(shard, []).append((statement.table, before, after))
        return [
            state.logs[shard].commit(changes, timestamp).position
            for shard, changes in sorted(per_shard.items())
        ]

    def commit_other(self, keyspace: str, shard: str) -> str:
        """Log an OTHER event on one shard (a statement vstreamer does not decode)."""
        return self._keyspaces[keyspace].logs[shard].commit_other(self.clock.seconds()).position

    def _alter(self, state: _Keyspace, alter: Alter, timestamp: int) -> list[str]:
        positions = []
        for shard in state.serving:
            log = state.logs[shard]
            schema = log.schemas[alter.table]
            column = next(c for c in schema.columns if c.name == alter.column)
            base = column.column_type.split("(")[0]
            statement = f"alter table {alter.table} modify {alter.column} {base}({alter.width})"
            new = schema.widened(alter.column, alter.width)
            positions.append(log.commit_ddl(new, statement, timestamp).position)
        return positions

    # -- resharding -------------------------------------------------------------

    def reshard(self, keyspace: str, new_shards: Sequence[str]) -> binlogdata.Journal:
        """Split or merge shards so ``new_shards`` become the serving shards.

        Shards in both lists are untouched. The new shards start with the
        rows of their key ranges (at position ``<uuid>:1``); every replaced
        shard logs a JOURNAL (SHARDS; participants: the replaced shards;
        shard_gtids: the new shards' starting positions) and ends its
        streams there. Later writes go to the new shards. Returns the journal.
        """
        state = self._keyspaces[keyspace]
        new_list = list(new_shards)
        problem = check_partition(new_list)
        if problem is not None:
            raise VStreamError(Code.INVALID_ARGUMENT, f"cannot reshard {keyspace}: {problem}")
        removed = [s for s in state.serving if s not in new_list]
        added = [s for s in new_list if s not in state.serving]
        if not removed:
            raise VStreamError(
                Code.INVALID_ARGUMENT, f"cannot reshard {keyspace}: no serving shard changes"
            )
        for shard in added:
            if shard in state.logs:
                raise VStreamError(
                    Code.INVALID_ARGUMENT,
                    f"cannot reshard {keyspace}: shard {shard} existed before",
                )
        state.generation += 1
        schemas = dict(state.logs[removed[0]].schemas)
        for shard in added:
            key_range = KeyRange.parse(shard)
            tables: dict[str, dict[Key, RowImage]] = {t: {} for t in schemas}
            for old in removed:
                for table, rows in state.logs[old].tables.items():
                    for key, values in rows.items():
                        if key_range.contains(keyspace_id(key)):
                            tables[table][key] = values
            log = self._add_shard(state, shard)
            log.bootstrap(tables, schemas)
        journal = binlogdata.Journal(
            id=self._rng.getrandbits(63),
            migration_type=binlogdata.MigrationType.SHARDS,
            shard_gtids=[
                binlogdata.ShardGtid(keyspace=keyspace, shard=s, gtid=state.logs[s].position())
                for s in added
            ],
            participants=[binlogdata.KeyspaceShard(keyspace=keyspace, shard=s) for s in removed],
            source_workflows=[f"{keyspace}.reshard{state.generation}"],
        )
        timestamp = self.clock.seconds()
        for shard in removed:
            state.logs[shard].commit_journal(journal.from_dict(journal.to_dict()), timestamp)
        state.serving = new_list
        self.topology.keyspaces[keyspace].shards = list(new_list)
        return journal

    def _add_shard(self, state: _Keyspace, shard: str) -> ShardLog:
        server_uuid = ShardLog.new_uuid(f"{self.seed}/{state.name}/{shard}/{state.generation}")
        log = ShardLog(
            state.name,
            shard,
            server_uuid,
            retention_bytes=self._retention,
            retention_seconds=self._retention_seconds,
        )
        state.logs[shard] = log
        for tablet_type in self._tablet_types:
            info = TabletInfo(
                state.name, shard, self.topology.cell, self._next_uid, tablet_type, None
            )
            self._next_uid += 1
            tablet = SimulatedTablet(info, log, self.clock)
            self._tablets[(state.name, shard, tablet_type)] = tablet
            self._by_alias[info.alias] = tablet
            self.topology.tablets.append(info)
        return log
