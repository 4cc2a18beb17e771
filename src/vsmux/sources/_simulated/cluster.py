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

The cluster usually shares its Trio loop with the gateway, so
``run_workload`` never holds it for long. It checkpoints after every
transaction, and a large one (thousands of rows) is prepared in slices
before one short, uninterrupted commit: the rows' keyspace ids (DES in
Python, the costly part) ``ROUTING_SLICE_KEYS`` at a time, the change list
``PLAN_SLICE_STATEMENTS`` at a time, the ROW events one shard at a time. The
commit then checks that nothing it read changed meanwhile (a reshard, a
write to the same rows by :meth:`SimulatedCluster.execute`); if something
did, the transaction is planned again and committed at once, so the result
is always what a synchronous commit at that moment would give.

Failovers move the PRIMARY role between tablets of a shard, which share its
binlog and so its GTID history: :meth:`SimulatedCluster.reparent` (planned:
the primary is demoted to REPLICA and a replica promoted, at once),
:meth:`~SimulatedCluster.kill_primary` and :meth:`~SimulatedCluster.promote`
(unplanned: the primary dies, later a replica takes over; the dead tablet
stays down, listed as a REPLICA), and :meth:`~SimulatedCluster.fail_over`
doing both with a delay. Each change updates the topology at once and is
recorded in :attr:`SimulatedCluster.reparents`. Writes go on meanwhile, as
they would on a semi-synchronous primary whose replicas have every commit.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, topodata
from vsmux.sources._simulated.binlog import (
    DEFAULT_RETENTION_BYTES,
    DEFAULT_RETENTION_SECONDS,
    Change,
    ShardLog,
    TablePart,
)
from vsmux.sources._simulated.clock import SimClock
from vsmux.sources._simulated.counts import StreamCounts
from vsmux.sources._simulated.routing import check_partition, keyspace_id, shard_for
from vsmux.sources._simulated.rows import RowImage
from vsmux.sources._simulated.schema import TableSchema
from vsmux.sources._simulated.tablet import SimulatedTablet
from vsmux.sources._simulated.workload import (
    DEFAULT_MAX_TABLE_ROWS,
    Alter,
    Delete,
    Key,
    Statement,
    Upsert,
    WorkloadGenerator,
)
from vsmux.topology import KeyRange, KeyspaceInfo, TabletInfo, Topology

__all__ = ["PLAN_SLICE_STATEMENTS", "ROUTING_SLICE_KEYS", "SimulatedCluster", "TableContents"]

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
# Keyspace ids a transaction computes per slice before it commits: the hash
# vindex costs ~50 us a key in Python, so a slice is ~3 ms. A 5000-row
# transaction routed at once held the loop for 300 ms.
ROUTING_SLICE_KEYS = 64
# Statements turned into row changes per slice (~5 us each: a few ms). A
# transaction with no more statements than this is planned in one go.
PLAN_SLICE_STATEMENTS = 512


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


def _owner(ksid: bytes, ranges: list[tuple[str, KeyRange]]) -> str:
    """The shard among ``ranges`` whose key range holds ``ksid``."""
    return next(shard for shard, key_range in ranges if key_range.contains(ksid))


def _key_of(schema: TableSchema, statement: Upsert | Delete) -> Key:
    if isinstance(statement, Delete):
        return statement.key
    return schema.pk_of(tuple(statement.values.get(c) for c in schema.column_names))


@dataclass(slots=True)
class _Plan:
    """A transaction turned into per-shard row changes, not applied yet.

    ``reads`` holds the row each change was computed from (the first read of
    every touched row; None: absent) and ``generation`` the keyspace's shard
    layout, so a commit can tell whether they still hold. Key-index updates
    wait in ``key_ops`` (table, key, present afterwards) for the commit.
    """

    generation: int
    per_shard: dict[str, list[Change]] = field(default_factory=dict)
    reads: dict[tuple[str, str, Key], RowImage | None] = field(default_factory=dict)
    key_ops: list[tuple[str, Key, bool]] = field(default_factory=list)


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
        # (keyspace, shard, old primary alias, new primary alias, how) per role change.
        self.reparents: list[tuple[str, str, str, str, str]] = []

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

    def stream_counts(self, keyspace: str | None = None) -> StreamCounts:
        """The VStream and StreamHealth streams of every tablet (of ``keyspace``), summed.

        Open now and opened in all (see :mod:`.counts`); per tablet,
        ``tablet.stream_counts()``.
        """
        total = StreamCounts()
        for tablet in self._by_alias.values():
            if keyspace is None or tablet.info.keyspace == keyspace:
                total += tablet.stream_counts()
        return total

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
        """Apply transactions at ``rate_per_second`` until cancelled (or the max).

        The same transactions as :meth:`apply_random_transactions` with the
        same seed, each committed whole. Cancellation between or inside the
        slices of a transaction leaves it uncommitted: nothing half-applied.
        """
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        interval = max(1.0 / rate_per_second, _WORKLOAD_TICK)
        names = sorted(self._keyspaces)
        start = trio.current_time()
        done = 0
        while max_transactions is None or done < max_transactions:
            due = int((trio.current_time() - start) * rate_per_second) + 1 - done
            if max_transactions is not None:
                due = min(due, max_transactions - done)
            for _ in range(max(due, 0)):
                name = keyspace or self._rng.choice(names)
                statements = self.workload.next_transaction(self._keyspaces[name])
                await self._route_in_slices(name, statements)
                await self._execute_in_slices(name, statements)
                done += 1
                await trio.lowlevel.checkpoint()
            await trio.sleep(interval)

    async def _execute_in_slices(self, keyspace: str, statements: Sequence[Statement]) -> None:
        """:meth:`execute`, with the work before the commit done in slices.

        See the module docstring. Cancelled before the commit, nothing of
        the transaction is applied.
        """
        state = self._keyspaces[keyspace]
        if len(statements) <= PLAN_SLICE_STATEMENTS or any(
            isinstance(s, Alter) for s in statements
        ):
            self.execute(keyspace, *statements)
            return
        timestamp = self.clock.seconds()
        steps = self._plan(state, statements)
        while True:
            try:
                next(steps)
            except StopIteration as planned:
                plan: _Plan = planned.value
                break
            await trio.lowlevel.checkpoint()
        parts: dict[str, list[TablePart]] = {}
        for shard, changes in sorted(plan.per_shard.items()):
            parts[shard] = state.logs[shard].encode(changes, timestamp)
            await trio.lowlevel.checkpoint()
        if self._still_holds(state, plan):
            self._apply(state, plan, timestamp, parts)
        else:
            self.execute(keyspace, *statements)

    async def _route_in_slices(self, keyspace: str, statements: Sequence[Statement]) -> None:
        """Compute the keyspace ids ``statements`` need, a slice at a time.

        They land in routing's cache, so the commit that follows finds them
        there; a small transaction fits one slice and does not pause at all.
        """
        state = self._keyspaces[keyspace]
        schemas = state.logs[state.serving[0]].schemas
        for count, statement in enumerate(statements, start=1):
            if not isinstance(statement, Alter):
                keyspace_id(_key_of(schemas[statement.table], statement))
            if count % ROUTING_SLICE_KEYS == 0:
                await trio.lowlevel.checkpoint()

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
        steps = self._plan(state, statements)
        while True:
            try:
                next(steps)
            except StopIteration as planned:
                return self._apply(state, planned.value, timestamp)

    def _plan(
        self, state: _Keyspace, statements: Sequence[Statement]
    ) -> Generator[None, None, _Plan]:
        """Turn ``statements`` into row changes per shard; reads tables, writes nothing.

        Yields after every ``PLAN_SLICE_STATEMENTS`` statements; returns the plan.
        """
        ranges = state.ranges()
        plan = _Plan(state.generation)
        pending: dict[tuple[str, str, Key], RowImage | None] = {}
        for count, statement in enumerate(statements, start=1):
            if count % PLAN_SLICE_STATEMENTS == 0:
                yield
            assert not isinstance(statement, Alter)
            schema = state.logs[state.serving[0]].schemas[statement.table]
            names = schema.column_names
            key = _key_of(schema, statement)
            try:
                shard = shard_for(key, ranges)
            except LookupError:
                if self._partial:
                    continue  # the row lives on a shard this process does not simulate
                raise
            slot = (shard, statement.table, key)
            if slot in pending:
                before = pending[slot]
            else:
                before = state.logs[shard].tables[statement.table].get(key)
                plan.reads[slot] = before
            if isinstance(statement, Delete):
                if before is None:
                    continue
                after: RowImage | None = None
            else:
                merged = dict(zip(names, before or (), strict=False))
                merged.update(statement.values)
                after = tuple(merged.get(c) for c in names)
            pending[slot] = after
            plan.key_ops.append((statement.table, key, after is not None))
            plan.per_shard.setdefault(shard, []).append((statement.table, before, after))
        return plan

    def _still_holds(self, state: _Keyspace, plan: _Plan) -> bool:
        """Whether ``plan`` would still be planned the same (identity of every row read)."""
        if state.generation != plan.generation:
            return False
        logs = state.logs
        return all(
            logs[shard].tables[table].get(key) is before
            for (shard, table, key), before in plan.reads.items()
        ) and not any(logs[shard].frozen for shard in plan.per_shard)

    def _apply(
        self,
        state: _Keyspace,
        plan: _Plan,
        timestamp: int,
        parts: dict[str, list[TablePart]] | None = None,
    ) -> list[str]:
        """Commit ``plan`` on each shard it touches, in shard order; the positions."""
        for table, key, present in plan.key_ops:
            if present:
                state.keys[table].add(key)
            else:
                state.keys[table].remove(key)
        return [
            state.logs[shard].commit(changes, timestamp, (parts or {}).get(shard)).position
            for shard, changes in sorted(plan.per_shard.items())
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

    # -- failovers ----------------------------------------------------------------

    def reparent(self, keyspace: str, shard: str, new_primary: str | None = None) -> str:
        """Planned reparent: the primary becomes a REPLICA, a replica the PRIMARY.

        ``new_primary`` is a replica's alias (default: the shard's REPLICA).
        Streams on the old primary that asked for PRIMARY end with
        FAILED_PRECONDITION. Returns the new primary's alias.
        """
        old = self._tablets[(keyspace, shard, topodata.TabletType.PRIMARY)]
        new = self._replica(keyspace, shard, new_primary)
        self._swap(old, new, "planned")
        return new.alias

    def kill_primary(self, keyspace: str, shard: str) -> str:
        """Unplanned failover, first half: the primary dies; the topology still names it."""
        old = self._tablets[(keyspace, shard, topodata.TabletType.PRIMARY)]
        old.health.set_down(True)
        return old.alias

    def promote(self, keyspace: str, shard: str, new_primary: str | None = None) -> str:
        """Unplanned failover, second half: a replica becomes PRIMARY; the dead one a REPLICA."""
        old = self._tablets[(keyspace, shard, topodata.TabletType.PRIMARY)]
        new = self._replica(keyspace, shard, new_primary)
        self._swap(old, new, "unplanned")
        return new.alias

    async def fail_over(self, keyspace: str, shard: str, *, promote_after: float) -> str:
        """Kill the shard's primary, then promote a replica ``promote_after`` seconds later.

        Cancelled in between, the primary stays dead and nothing is promoted.
        """
        self.kill_primary(keyspace, shard)
        await trio.sleep(promote_after)
        return self.promote(keyspace, shard)

    def _replica(self, keyspace: str, shard: str, alias: str | None) -> SimulatedTablet:
        if alias is None:
            found = self._tablets.get((keyspace, shard, topodata.TabletType.REPLICA))
            if found is None:
                raise ValueError(
                    f"{keyspace}/{shard} has no replica to promote "
                    "(build the cluster with tablet types primary,replica)"
                )
            return found
        tablet = self._by_alias[alias]
        if (tablet.info.keyspace, tablet.info.shard) != (keyspace, shard) or (
            tablet.info.tablet_type != topodata.TabletType.REPLICA
        ):
            raise ValueError(f"{alias} is not a replica of {keyspace}/{shard}")
        return tablet

    def _swap(self, old: SimulatedTablet, new: SimulatedTablet, how: str) -> None:
        """Demote ``old`` to REPLICA, then promote ``new``; the topology follows."""
        keyspace, shard = old.info.keyspace, old.info.shard
        tablets = self.topology.tablets
        for tablet, tablet_type in (
            (old, topodata.TabletType.REPLICA),
            (new, topodata.TabletType.PRIMARY),
        ):
            index = tablets.index(tablet.info)
            tablets[index] = tablet.retype(tablet_type)
            self._tablets[(keyspace, shard, tablet_type)] = tablet
        self.reparents.append((keyspace, shard, old.alias, new.alias, how))

    # -- resharding -------------------------------------------------------------

    def reshard(self, keyspace: str, new_shards: Sequence[str]) -> binlogdata.Journal:
        """Split or merge shards so ``new_shards`` become the serving shards.

        Shards in both lists are untouched. The new shards start with the
        rows of their key ranges (at position ``<uuid>:1``); every replaced
        shard logs a JOURNAL (SHARDS; participants: the replaced shards;
        shard_gtids: the new shards' starting positions) and ends its
        streams there. Later writes go to the new shards. Returns the journal.
        """
        return self._reshard(keyspace, new_shards, {})

    async def reshard_in_slices(
        self, keyspace: str, new_shards: Sequence[str]
    ) -> binlogdata.Journal:
        """:meth:`reshard`, with the rows' keyspace ids computed first, in slices.

        Routing every row of the replaced shards (DES in Python) is what took
        seconds (4 s for 35k rows); each row's new shard is found
        ``ROUTING_SLICE_KEYS`` rows at a time, and the switch itself (rows to
        the new shards, journals) runs at once, routing then only the rows
        written in between. Invalid shards are refused before any work;
        cancelled before the switch, nothing has changed.
        """
        state = self._keyspaces[keyspace]
        _, removed, added = self._check_reshard(state, keyspace, new_shards)
        ranges = [(shard, KeyRange.parse(shard)) for shard in added]
        keys = [key for old in removed for rows in state.logs[old].tables.values() for key in rows]
        targets: dict[Key, str] = {}
        for count, key in enumerate(keys, start=1):
            targets[key] = _owner(keyspace_id(key), ranges)
            if count % ROUTING_SLICE_KEYS == 0:
                await trio.lowlevel.checkpoint()
        return self._reshard(keyspace, new_shards, targets)

    def _check_reshard(
        self, state: _Keyspace, keyspace: str, new_shards: Sequence[str]
    ) -> tuple[list[str], list[str], list[str]]:
        """The new serving list, the shards it replaces and the ones it adds; or why not."""
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
        return new_list, removed, added

    def _reshard(
        self, keyspace: str, new_shards: Sequence[str], targets: dict[Key, str]
    ) -> binlogdata.Journal:
        """The reshard itself; ``targets`` holds rows' new shards already found."""
        state = self._keyspaces[keyspace]
        new_list, removed, added = self._check_reshard(state, keyspace, new_shards)
        state.generation += 1
        schemas = dict(state.logs[removed[0]].schemas)
        # Every row of a replaced shard belongs to exactly one added shard: the
        # kept shards cover the same key ranges as before.
        ranges = [(shard, KeyRange.parse(shard)) for shard in added]
        moved: dict[str, dict[str, dict[Key, RowImage]]] = {
            shard: {t: {} for t in schemas} for shard in added
        }
        for old in removed:
            for table, rows in state.logs[old].tables.items():
                for key, values in rows.items():
                    shard = targets.get(key) or _owner(keyspace_id(key), ranges)
                    moved[shard][table][key] = values
        for shard in added:
            log = self._add_shard(state, shard)
            log.bootstrap(moved[shard], schemas)
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
