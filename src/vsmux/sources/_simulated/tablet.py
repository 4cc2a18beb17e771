"""A simulated tablet: one shard's binlog served as a :class:`ShardSource`.

Several tablets of a shard (a primary, replicas, rdonly) share the shard's
:class:`ShardLog`; each has its own :class:`TabletFaults` and
:class:`TabletHealth`, so a test can break or degrade one tablet alone.

A tablet's type can change (:meth:`SimulatedTablet.retype`, used by the
cluster's reparents): its streams that asked for the old type then end with
FAILED_PRECONDITION, as a demoted vttablet's do. A tablet that is down
(``health.set_down``) refuses new streams and fails running ones with
UNAVAILABLE within a heartbeat interval.

Each tablet counts the streams it serves (:mod:`.counts`): ``vstreams`` and
``health.streams``, both open now and opened in all.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from dataclasses import replace

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, query, topodata
from vsmux.sources._simulated.binlog import Rows, ShardLog
from vsmux.sources._simulated.clock import SimClock
from vsmux.sources._simulated.counts import StreamCount, StreamCounts
from vsmux.sources._simulated.faults import FaultAction, TabletFaults
from vsmux.sources._simulated.health import TabletHealth
from vsmux.sources._simulated.stream import stream_batches
from vsmux.topology import TabletInfo
from vsmux.wire.frames import Frame

__all__ = ["SimulatedTablet"]

_OPEN = int(binlogdata.VEventType.BEGIN)
_CLOSE = (int(binlogdata.VEventType.COMMIT), int(binlogdata.VEventType.ROLLBACK))


class SimulatedTablet:
    """One tablet of a simulated shard; it is its own :class:`ShardSource`."""

    def __init__(self, info: TabletInfo, log: ShardLog, clock: SimClock) -> None:
        self.info = info
        self.log = log
        self.clock = clock
        self.faults = TabletFaults()
        self.health = TabletHealth(info, term_start=int(clock.now()))
        #: VStreams open now and opened in all (see :mod:`.counts`).
        self.vstreams = StreamCount()

    @property
    def tablet(self) -> TabletInfo:
        return self.info

    def retype(self, tablet_type: topodata.TabletType) -> TabletInfo:
        """Serve as ``tablet_type`` from now on; the new TabletInfo.

        Becoming PRIMARY starts a new primary term (reported on StreamHealth).
        """
        self.info = replace(self.info, tablet_type=tablet_type)
        self.health.info = self.info
        if tablet_type == topodata.TabletType.PRIMARY:
            self.health.term_start = int(self.clock.now())
        self.health.set_type(tablet_type)
        return self.info

    def stream_counts(self) -> StreamCounts:
        """The streams this tablet serves now and has opened (VStream, StreamHealth)."""
        health = self.health.streams
        return StreamCounts(self.vstreams.open, self.vstreams.opened, health.open, health.opened)

    @property
    def alias(self) -> str:
        return self.info.alias

    @property
    def position(self) -> str:
        """The shard's executed GTID set, ``MySQL56/<uuid>:1-N``."""
        return self.log.position()

    @property
    def tables(self) -> dict[str, Rows]:
        """Live table contents: table -> primary-key tuple -> row values."""
        return self.log.tables

    async def batches(
        self, request: binlogdata.VStreamRequest
    ) -> AsyncGenerator[list[Frame], None]:
        """The stream's responses with faults applied; errors carry no alias.

        Cancellation stops the stream at once; nothing is left running.
        """
        self.health.check_up()
        self._check_target(request.target)
        in_transaction = False
        with self.vstreams.counting():
            async with aclosing(stream_batches(self.log, request, self.clock)) as responses:
                async for batch in responses:
                    await self.faults.before_send()
                    self.health.check_up()
                    self._check_target(request.target)
                    sent, trigger = self.faults.cut(batch, in_transaction)
                    for frame in sent:
                        if frame.type == _OPEN:
                            in_transaction = True
                        elif frame.type in _CLOSE:
                            in_transaction = False
                    if sent:
                        yield sent
                    if trigger is not None:
                        if trigger.action is FaultAction.FAIL:
                            raise VStreamError(trigger.code, trigger.message)
                        return

    def vstream(
        self, request: binlogdata.VStreamRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
        """Open a stream; errors are raised with the tablet alias in front."""
        return self._open(request)

    @asynccontextmanager
    async def _open(
        self, request: binlogdata.VStreamRequest
    ) -> AsyncIterator[AsyncIterator[list[Frame]]]:
        async with aclosing(self._with_alias(request)) as stream:
            yield stream

    async def _with_alias(
        self, request: binlogdata.VStreamRequest
    ) -> AsyncGenerator[list[Frame], None]:
        try:
            # Closed with this generator, not left to the garbage collector.
            async with aclosing(self.batches(request)) as batches:
                async for batch in batches:
                    yield batch
        except VStreamError as exc:
            raise exc.wrap(self.alias) from None

    def stream_health(
        self,
    ) -> AbstractAsyncContextManager[AsyncIterator[query.StreamHealthResponse]]:
        """Watch this tablet's health reports (until the block exits)."""
        return aclosing(self.health.reports())

    def _check_target(self, target: query.Target | None) -> None:
        if target is None:
            return
        mine = (self.info.keyspace, self.info.shard)
        if (target.keyspace, target.shard) != mine:
            raise VStreamError(
                Code.FAILED_PRECONDITION,
                f"invalid target {target.keyspace}/{target.shard}: this tablet serves "
                f"{mine[0]}/{mine[1]}",
            )
        wanted = target.tablet_type
        if wanted not in (topodata.TabletType.UNKNOWN, self.health.tablet_type):
            raise VStreamError(
                Code.FAILED_PRECONDITION,
                f"invalid tablet type {wanted.name} for {mine[0]}/{mine[1]}: this tablet is "
                f"{self.health.tablet_type.name}",
            )
