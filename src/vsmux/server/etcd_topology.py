"""The gateway's topology from a Vitess cluster's etcd, kept current by watching it.

``vsmux serve --topo-implementation etcd2`` reads what vtgate reads: the
global records under ``--topo-global-root`` on
``--topo-global-server-address`` (keyspaces, shards, cells), then the
records of its ``--cell`` under that cell's CellInfo root and address
(tablets, SrvKeyspace, SrvVSchema), and the Tablet records of every other
cell named by ``--cells-to-watch`` (vtgate's ``--cells_to_watch``), each
under its own CellInfo root and address. :class:`EtcdTopologyWatcher` loads
them into a :class:`Topology`, reports itself started, and then follows
every prefix with etcd watches, writing each change into the same object
the gateway reads (``VitessRecords.update``), as the simulated cluster does
on a reshard: new requests resolve against the new shards, a new primary is
what the tablet picker sees next. One connection serves every root on the
same etcd server address.

When etcd goes away (a restart, a partition) the last topology stays in
use; the watcher logs it, reconnects with exponential backoff, reads every
record again (so changes made meanwhile are caught up) and watches on from
there. A record that cannot be used is logged with its key and skipped.

Another watched cell is followed on its own: one that has no CellInfo, or
whose etcd does not answer, is logged and counted
(``topo_server_cells_unavailable``) and retried without holding up the
global records, the own cell or the other cells; its last tablets stay in
use meanwhile. A cell whose CellInfo changes is read again from where it now
points; one whose CellInfo is deleted loses its tablets. Only the own cell's
SrvKeyspace and SrvVSchema route requests, as in vtgate. The readers of the
other cells, and the per-address connections, are in
:mod:`vsmux.server.etcd_other_cells`.

The rules live in ``vsmux.topology`` (``VitessRecords``); this is the
waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import trio

from vsmux.core.metrics import Metrics
from vsmux.errors import Code, VStreamError
from vsmux.server.etcd_other_cells import (
    RECONNECT_BACKOFF_MAX_SECONDS,
    RECONNECT_BACKOFF_START_SECONDS,
    TOPO_CELLS_UNAVAILABLE,
    EtcdConnections,
    OtherCells,
    decoded_keys,
    etcd_prefix,
)
from vsmux.topology import CellLocation, Topology, VitessRecords
from vsmux.transport import ETCD_KEEPALIVE_SECONDS, EtcdClient, KeyChange

__all__ = [
    "RECONNECT_BACKOFF_MAX_SECONDS",
    "RECONNECT_BACKOFF_START_SECONDS",
    "TOPO_BAD_RECORDS",
    "TOPO_CELLS_UNAVAILABLE",
    "TOPO_CHANGES",
    "TOPO_CONNECTED",
    "TOPO_LOADS",
    "EtcdTopoConfig",
    "EtcdTopologyState",
    "EtcdTopologyWatcher",
]

log = logging.getLogger("vsmux.topology")

# Gateway-wide metric names (Metrics.gateway; exported by metrics_http).
TOPO_CONNECTED = "topo_server_connected"
TOPO_LOADS = "topo_server_loads"
TOPO_CHANGES = "topo_server_changes"
TOPO_BAD_RECORDS = "topo_server_bad_records"
# TOPO_CELLS_UNAVAILABLE and the RECONNECT_BACKOFF_* constants live in
# etcd_other_cells, which uses them too; they stay part of this module's
# interface (__all__), where the metrics page and the tests import them.

#: Batches of changes from the two watches waiting to be applied; a watch
#: waits while the queue is full, so etcd is read no faster than changes
#: are applied.
CHANGES_QUEUE = 2


@dataclass(frozen=True, slots=True)
class EtcdTopoConfig:
    """Where the cluster's topology is: vtgate's ``--topo-global-*``, ``--cell``
    and ``--cells_to_watch``."""

    global_address: str
    global_root: str
    cell: str
    #: Seconds between pings of an idle etcd connection (see open_etcd).
    keepalive: float = ETCD_KEEPALIVE_SECONDS
    #: Cells whose Tablet records are read too. The own cell is always read
    #: (its SrvKeyspace routes, and vtgate's picker always adds the local
    #: cell), listed or not.
    cells_to_watch: tuple[str, ...] = ()

    def other_cells(self) -> list[str]:
        """The watched cells besides the own one, each once, in the order given."""
        return [cell for cell in dict.fromkeys(self.cells_to_watch) if cell != self.cell]


@dataclass(slots=True)
class EtcdTopologyState:
    """How the watch is doing, for logs, health and tests."""

    connected: bool = False
    #: Times every record was read (the first load and one per reconnect).
    loads: int = 0
    #: Changed keys applied from the watches.
    changes: int = 0
    last_error: str = ""
    #: Other watched cells whose tablets are not followed now, and why.
    cells_unavailable: dict[str, str] = field(default_factory=dict)


class _Resync(Exception):
    """Our cell's CellInfo changed: read everything again from where it points."""


@dataclass(frozen=True, slots=True)
class _Batch:
    scope: str  # "global" or "cell"
    changes: list[KeyChange]
    error: VStreamError | None = None  # set: the watch ended with it


class EtcdTopologyWatcher:
    """Keeps one :class:`Topology` equal to a Vitess cluster's records in etcd.

    ``topology`` is updated in place (its cell should be ``config.cell``);
    ``state`` says how the watch is doing, and so do ``metrics``' gateway-wide
    ``topo_server_*`` values when given.
    """

    def __init__(
        self,
        config: EtcdTopoConfig,
        topology: Topology,
        state: EtcdTopologyState | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.topology = topology
        self.state = state if state is not None else EtcdTopologyState()
        #: Called with True/False whenever etcd starts or stops answering
        #: (the gateway's ``vsmux.topology`` health entry follows it).
        self.on_connected: Callable[[bool], None] | None = None
        self._metrics = metrics if metrics is not None else Metrics()
        self._records = VitessRecords(config.cell, config.global_root)
        self._task_status: trio.TaskStatus[None] | None = None
        # Lives as long as the watcher: its readers are started again on
        # every reconnect, but it remembers which CellInfo each one uses.
        self._other_cells = OtherCells(
            config,
            self._records,
            topology,
            self.state,
            self._metrics,
            log_problems=self._log_problems,
            count_changes=self._count_changes,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load, then follow the records until cancelled.

        Reports started once every record of the global root and the own
        cell has been read the first time (until then it retries, logging
        why) and every other watched cell has been tried once (one that
        could not be read is retried in the background). Must run inside
        :func:`~vsmux.transport.asyncio_loop`; cancelling it ends its etcd
        calls.
        """
        self._task_status = task_status
        backoff = RECONNECT_BACKOFF_START_SECONDS
        while True:
            try:
                await self._load_and_follow()
            except _Resync:
                log.info(
                    "the CellInfo of cell %r changed: reading its records again", self.config.cell
                )
                backoff = RECONNECT_BACKOFF_START_SECONDS
            except VStreamError as exc:
                if self.state.connected:
                    backoff = RECONNECT_BACKOFF_START_SECONDS
                self._set_connected(False)
                self.state.last_error = exc.message
                kept = "the last topology stays in use" if self.state.loads else "no topology yet"
                log.warning(
                    "topology server: %s; %s, reconnecting in %.2fs", exc.message, kept, backoff
                )
                await trio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX_SECONDS)

    def _set_connected(self, connected: bool) -> None:
        """Record whether etcd answers: state, metric, and :attr:`on_connected`."""
        self.state.connected = connected
        self._metrics.gateway[TOPO_CONNECTED] = int(connected)
        if self.on_connected is not None:
            self.on_connected(connected)

    async def _load_and_follow(self) -> None:
        config, records = self.config, self._records
        async with AsyncExitStack() as stack:
            connections = EtcdConnections(stack, config.keepalive)
            global_etcd = await connections.get(config.global_address)
            global_snapshot = await global_etcd.get_prefix(etcd_prefix(config.global_root))
            self._log_problems(records.load_global(decoded_keys(global_snapshot.values)))
            location = records.cell_location()
            if location is None:
                raise VStreamError(
                    Code.UNAVAILABLE,
                    f"etcd at {config.global_address} has no CellInfo for cell {config.cell!r} "
                    f"under {config.global_root!r} (check --cell and --topo-global-root)",
                )
            cell_etcd = await connections.get(location.server_address)
            cell_snapshot = await cell_etcd.get_prefix(etcd_prefix(location.root))
            self._log_problems(records.load_cell(location.root, decoded_keys(cell_snapshot.values)))
            records.update(self.topology)
            if self.state.last_error:
                log.info("topology server back: records read again")
            self._set_connected(True)
            self.state.last_error = ""
            self.state.loads += 1
            self._metrics.gateway[TOPO_LOADS] += 1
            log.info(
                "topology of cell %r from etcd at %s: %s",
                config.cell,
                config.global_address,
                records.describe(),
            )
            self._log_unwatched_alias_cells()
            ended: Exception | None = None
            async with trio.open_nursery() as nursery:
                # Each other cell is tried once before the gateway starts.
                await self._other_cells.start(nursery, connections)
                if self._task_status is not None:
                    self._task_status.started()
                    self._task_status = None
                try:
                    await self._follow(
                        (
                            global_etcd,
                            etcd_prefix(config.global_root),
                            global_snapshot.revision + 1,
                        ),
                        (cell_etcd, etcd_prefix(location.root), cell_snapshot.revision + 1),
                        location,
                    )
                except (VStreamError, _Resync) as exc:
                    ended = exc
                # The other cells are read again after the reconnect.
                nursery.cancel_scope.cancel()
            # Raised after the nursery, so it is not wrapped in a group.
            if ended is not None:
                raise ended

    def _log_problems(self, problems: list[str]) -> None:
        for problem in problems:
            log.warning("topology record %s", problem)
        self._metrics.gateway[TOPO_BAD_RECORDS] += len(problems)

    def _count_changes(self, count: int) -> None:
        self.state.changes += count
        self._metrics.gateway[TOPO_CHANGES] += count

    def _log_unwatched_alias_cells(self) -> None:
        """Say which cells of the own cell's alias are not watched: vtgate's
        health check does not add them either, so their tablets stay unknown."""
        watched = {self.config.cell, *self.config.cells_to_watch}
        for name, cells in self._records.cells_aliases().items():
            unwatched = [cell for cell in cells if cell not in watched]
            if self.config.cell in cells and unwatched:
                log.info(
                    "cells %s of alias %r (which holds cell %r) are not in --cells-to-watch: "
                    "their tablets are not known",
                    ", ".join(repr(cell) for cell in unwatched),
                    name,
                    self.config.cell,
                )

    async def _follow(
        self,
        global_watch: tuple[EtcdClient, bytes, int],
        cell_watch: tuple[EtcdClient, bytes, int],
        location: CellLocation,
    ) -> None:
        """Apply both watches' changes until one ends; raises why it ended."""
        ended: Exception | None = None
        send, receive = trio.open_memory_channel[_Batch](CHANGES_QUEUE)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, "global", *global_watch, send.clone())
            nursery.start_soon(self._pump, "cell", *cell_watch, send.clone())
            send.close()
            async for batch in receive:
                if batch.error is not None:
                    ended = batch.error
                elif not self._apply(batch, location):
                    ended = _Resync()
                if ended is not None:
                    break
                if batch.scope == "global":
                    self._other_cells.reread_moved()
            # Exceptions leave after the nursery, so they are not wrapped in a group.
            nursery.cancel_scope.cancel()
        if ended is not None:
            raise ended

    async def _pump(
        self,
        scope: str,
        etcd: EtcdClient,
        prefix: bytes,
        revision: int,
        send: trio.MemorySendChannel[_Batch],
    ) -> None:
        with send:
            try:
                async with etcd.watch_prefix(prefix, revision) as next_changes:
                    while True:
                        await send.send(_Batch(scope, await next_changes()))
            except VStreamError as exc:
                await send.send(_Batch(scope, [], exc))

    def _apply(self, batch: _Batch, location: CellLocation) -> bool:
        """Apply a batch; False if our cell's location changed (read everything again)."""
        records = self._records
        apply = records.apply_global if batch.scope == "global" else records.apply_cell
        self._log_problems(
            [
                problem
                for change in batch.changes
                if (problem := apply(change.key.decode(errors="replace"), change.value))
            ]
        )
        self._count_changes(len(batch.changes))
        if records.cell_location() != location:
            return False
        if records.update(self.topology):
            log.info("topology changed: %s", records.describe())
        return True
