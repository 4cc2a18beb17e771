"""The Tablet records of the other cells of ``--cells-to-watch``, read and followed from etcd.

vtgate's ``--cells_to_watch`` names cells whose tablets may be picked besides
those of the gateway's own ``--cell``. Each of them has a CellInfo in the
global records saying which etcd server holds its records and under which
root. For every such cell :class:`OtherCells` runs a reader of its own that
reads the cell's Tablet records, then follows them with an etcd watch,
writing each change into the records and the :class:`Topology` that
:class:`~vsmux.server.etcd_topology.EtcdTopologyWatcher` keeps. Only Tablet
records are read there: routing (SrvKeyspace, SrvVSchema) stays with the
own cell, as in vtgate.

A reader never holds up the global records, the own cell or another cell:

* a cell without CellInfo loses its tablets and waits until one appears;
* a cell whose etcd does not answer keeps its last tablets and is retried
  with exponential backoff;
* a cell whose CellInfo changes is read again from where it now points
  (the watcher calls :meth:`OtherCells.reread_moved` after each change to
  the global records).

Meanwhile the cell is listed, with the reason, in the watcher's
``EtcdTopologyState.cells_unavailable`` and counted in the
``topo_server_cells_unavailable`` metric.

:class:`EtcdConnections` keeps one etcd client per server address, so the
global root, the own cell and every other cell on the same server share one
connection. The reconnect backoff constants and the helpers for reading a
root are here too, because both this module and the watcher use them.

Cancellation: the readers run in a nursery the watcher owns, so they are
cancelled with it, when the watcher itself is cancelled and whenever the
watcher reconnects and reads everything again (it starts new readers then).
Cancelling a reader ends its etcd calls and nothing else: what it has read
stays in the records, so the cell's last tablets stay in use until the next
reader replaces them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import trio

from vsmux.core.metrics import Metrics
from vsmux.errors import VStreamError
from vsmux.topology import CellLocation, Topology, VitessRecords
from vsmux.transport import EtcdClient, KeyChange, open_etcd

if TYPE_CHECKING:
    # Types only: etcd_topology imports this module, so a runtime import
    # back would be circular.
    from vsmux.server.etcd_topology import EtcdTopoConfig, EtcdTopologyState

__all__ = [
    "RECONNECT_BACKOFF_MAX_SECONDS",
    "RECONNECT_BACKOFF_START_SECONDS",
    "TOPO_CELLS_UNAVAILABLE",
    "EtcdConnections",
    "OtherCells",
    "decoded_keys",
    "etcd_prefix",
]

# The same logger as the watcher's, so the topology's messages stay together.
log = logging.getLogger("vsmux.topology")

#: Cells of --cells-to-watch (besides the own cell) whose tablets are not
#: followed now: no CellInfo, or their etcd does not answer.
TOPO_CELLS_UNAVAILABLE = "topo_server_cells_unavailable"

# Used by every reconnect: the watcher's own and each other cell's.
RECONNECT_BACKOFF_START_SECONDS = 0.25
RECONNECT_BACKOFF_MAX_SECONDS = 8.0


def etcd_prefix(root: str) -> bytes:
    """The etcd key prefix of every record under ``root``."""
    return (root.rstrip("/") + "/").encode()


def decoded_keys(values: dict[bytes, bytes]) -> dict[str, bytes]:
    """``values`` with text keys, as the records want them."""
    return {key.decode(errors="replace"): value for key, value in values.items()}


class EtcdConnections:
    """One etcd client per server address for one round of reading; closed with ``stack``.

    Clients connect at their first call and again after a dropped
    connection, so a client stays usable after one of its calls failed.
    """

    def __init__(self, stack: AsyncExitStack, keepalive: float) -> None:
        self._stack = stack
        self._keepalive = keepalive
        self._clients: dict[str, EtcdClient] = {}

    async def get(self, address: str) -> EtcdClient:
        """The client for ``address``, opened on first use (INVALID_ARGUMENT if not host:port)."""
        client = self._clients.get(address)
        if client is None:
            opened = open_etcd(address, keepalive=self._keepalive)
            client = self._clients[address] = await self._stack.enter_async_context(opened)
        return client


class OtherCells:
    """The readers of the other watched cells, for one topology watcher.

    They write into the watcher's ``records`` and ``topology`` and report in
    its ``state`` and ``metrics``; ``log_problems`` logs and counts records
    that cannot be used, ``count_changes`` counts the changed keys applied.
    """

    def __init__(
        self,
        config: EtcdTopoConfig,
        records: VitessRecords,
        topology: Topology,
        state: EtcdTopologyState,
        metrics: Metrics,
        *,
        log_problems: Callable[[list[str]], None],
        count_changes: Callable[[int], None],
    ) -> None:
        self._config = config
        self._records = records
        self._topology = topology
        self._state = state
        self._metrics = metrics
        self._log_problems = log_problems
        self._count_changes = count_changes
        # Other watched cell -> the CellInfo its reader uses (None: none yet)
        # and the scope to cancel when that changes.
        self._readers: dict[str, tuple[CellLocation | None, trio.CancelScope]] = {}

    async def start(self, nursery: trio.Nursery, connections: EtcdConnections) -> None:
        """Start a reader for each other watched cell in ``nursery``.

        Returns once every cell has been tried once, so that normally their
        tablets are there from the gateway's first request. The cells are
        tried all at once, so that cells on etcds that do not answer wait
        one call timeout together, not one each.
        """
        async with trio.open_nursery() as first_tries:
            for cell in self._config.other_cells():
                first_tries.start_soon(nursery.start, self._follow, cell, connections)

    def reread_moved(self) -> None:
        """Restart the reading of every other cell whose CellInfo changed."""
        for cell, (location, scope) in self._readers.items():
            if self._records.cell_location(cell) != location:
                scope.cancel()

    async def _follow(
        self,
        cell: str,
        connections: EtcdConnections,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Read and follow the Tablet records of another watched cell until cancelled.

        Reports started after the first try, whether the cell could be read
        or not: a cell without CellInfo waits for one, an etcd that does not
        answer is retried with backoff, and neither holds up the rest.
        Cancelling it ends its etcd calls; what it read stays in the records.
        """
        reported = False

        def report_started() -> None:
            nonlocal reported
            if not reported:
                reported = True
                task_status.started()

        backoff = RECONNECT_BACKOFF_START_SECONDS
        while True:
            location = self._records.cell_location(cell)
            # Cancelled by reread_moved when the cell's CellInfo changes.
            with trio.CancelScope() as scope:
                self._readers[cell] = (location, scope)
                if location is None:
                    self._no_cell_info(cell)
                    report_started()
                    await trio.sleep_forever()  # until one appears (or changes)
                try:
                    etcd = await connections.get(location.server_address)
                    snapshot = await etcd.get_prefix(etcd_prefix(location.root))
                    self._log_problems(
                        self._records.load_other_cell(
                            cell, location.root, decoded_keys(snapshot.values)
                        )
                    )
                    self._records.update(self._topology)
                    self._read(cell, location)
                    report_started()
                    backoff = RECONNECT_BACKOFF_START_SECONDS
                    async with etcd.watch_prefix(
                        etcd_prefix(location.root), snapshot.revision + 1
                    ) as next_changes:
                        while True:
                            self._apply(cell, await next_changes())
                except VStreamError as exc:
                    self._unavailable(cell, location, exc.message, backoff)
                    report_started()
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX_SECONDS)

    def _no_cell_info(self, cell: str) -> None:
        """A watched cell without CellInfo: its tablets are dropped until one appears."""
        self._records.forget_other_cell(cell)
        if self._records.update(self._topology):
            log.info("topology changed: %s", self._records.describe())
        why = (
            f"etcd at {self._config.global_address} has no CellInfo for cell {cell!r} "
            f"under {self._config.global_root!r}"
        )
        self._set_unavailable(cell, why)
        log.warning(
            "--cells-to-watch: %s; its tablets are not known until one appears (check the "
            "cell's name)",
            why,
        )

    def _unavailable(self, cell: str, location: CellLocation, message: str, backoff: float) -> None:
        known = self._records.other_cell_tablets(cell)
        self._set_unavailable(cell, message)
        kept = f"its last {known} tablets stay in use" if known else "none of its tablets known"
        log.warning(
            "tablets of cell %r under %r: %s; %s, reconnecting in %.2fs",
            cell,
            location.root,
            message,
            kept,
            backoff,
        )

    def _read(self, cell: str, location: CellLocation) -> None:
        was_unavailable = cell in self._state.cells_unavailable
        self._set_unavailable(cell, None)
        log.info(
            "tablets of cell %r from etcd at %s under %r%s: %d tablets",
            cell,
            location.server_address,
            location.root,
            " (back)" if was_unavailable else "",
            self._records.other_cell_tablets(cell),
        )

    def _set_unavailable(self, cell: str, why: str | None) -> None:
        """Record why ``cell``'s tablets are not followed now (None: they are again)."""
        if why is None:
            self._state.cells_unavailable.pop(cell, None)
        else:
            self._state.cells_unavailable[cell] = why
        self._metrics.gateway[TOPO_CELLS_UNAVAILABLE] = len(self._state.cells_unavailable)

    def _apply(self, cell: str, changes: list[KeyChange]) -> None:
        records = self._records
        self._log_problems(
            [
                problem
                for change in changes
                if (
                    problem := records.apply_other_cell(
                        cell, change.key.decode(errors="replace"), change.value
                    )
                )
            ]
        )
        self._count_changes(len(changes))
        if records.update(self._topology):
            log.info("topology changed: %s", records.describe())
