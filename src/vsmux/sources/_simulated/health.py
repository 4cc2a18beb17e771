"""The health a simulated tablet reports on StreamHealth, and its controls.

Operators and tests change a tablet's reported type, serving state,
replication lag and health error, or take it down (its health streams then
fail with UNAVAILABLE, as a dead vttablet's connection would); every change
wakes the tablet's health streams, which also repeat the current report every
``HEALTH_REPORT_INTERVAL`` seconds as a vttablet does.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import trio

from vsmux.errors import Code, VStreamError
from vsmux.proto import query, topodata
from vsmux.sources._simulated.counts import StreamCount
from vsmux.topology import TabletInfo

__all__ = ["HEALTH_REPORT_INTERVAL", "TabletHealth"]

# A vttablet re-broadcasts its health periodically even without changes; a
# few seconds keeps watchers fresh without flooding them.
HEALTH_REPORT_INTERVAL = 5.0


class TabletHealth:
    """Mutable health state of one tablet."""

    def __init__(self, info: TabletInfo, term_start: int = 0) -> None:
        self.info = info
        self.tablet_type: topodata.TabletType = info.tablet_type
        self.serving = True
        self.lag_seconds = 0
        self.health_error = ""
        self.term_start = term_start
        self.down = False
        #: StreamHealth streams open now and opened in all (see :mod:`.counts`).
        self.streams = StreamCount()
        self._changed = trio.Event()

    def set_down(self, down: bool) -> None:
        """Take the tablet down (its process died) or bring it back."""
        self.down = down
        self._notify()

    def check_up(self) -> None:
        """Raise UNAVAILABLE if the tablet is down."""
        if self.down:
            raise VStreamError(
                Code.UNAVAILABLE, f"tablet {self.info.alias} is down: connection refused"
            )

    def set_type(self, tablet_type: topodata.TabletType) -> None:
        self.tablet_type = tablet_type
        self._notify()

    def set_serving(self, serving: bool) -> None:
        self.serving = serving
        self._notify()

    def set_lag(self, seconds: int) -> None:
        self.lag_seconds = seconds
        self._notify()

    def set_error(self, message: str) -> None:
        """Report ``message`` as health_error ("" clears it)."""
        self.health_error = message
        self._notify()

    def report(self) -> query.StreamHealthResponse:
        primary = self.tablet_type == topodata.TabletType.PRIMARY
        return query.StreamHealthResponse(
            target=query.Target(
                keyspace=self.info.keyspace,
                shard=self.info.shard,
                tablet_type=self.tablet_type,
                cell=self.info.cell,
            ),
            serving=self.serving,
            primary_term_start_timestamp=self.term_start if primary else 0,
            realtime_stats=query.RealtimeStats(
                health_error=self.health_error,
                replication_lag_seconds=self.lag_seconds,
            ),
            tablet_alias=topodata.TabletAlias(cell=self.info.cell, uid=self.info.uid),
        )

    async def reports(self) -> AsyncGenerator[query.StreamHealthResponse, None]:
        """The current report, then one per change or interval; runs until cancelled.

        Raises UNAVAILABLE as soon as the tablet is down.
        """
        self.check_up()
        with self.streams.counting():
            while True:
                self.check_up()
                changed = self._changed
                yield self.report()
                with trio.move_on_after(HEALTH_REPORT_INTERVAL):
                    await changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()
