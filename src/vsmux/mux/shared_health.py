"""One StreamHealth stream per tablet, however many shard streams watch it.

Every shard stream watches its tablet's health beside its vstream, and the
tablet picker probes health before a pick. With shared feeds, fifty clients
of a shard would otherwise still cost the tablet fifty health streams.
:class:`SharedHealth` keeps one upstream ``StreamHealth`` per tablet while
anyone watches (and ``share_linger_seconds`` after), and gives every watcher
the latest report: at once when it starts watching (so a probe answers
without waiting for the tablet's next report), then each newer one. A
watcher that falls behind skips to the latest report; health is a state,
not a log.

When the upstream stream fails or ends, every watcher gets that error or
end, and the next watcher opens a new stream. Cancellation of a watcher
only stops its watching; the upstream task lives in the hub's nursery.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager

import trio

from vsmux.errors import Code, VStreamError
from vsmux.mux.shard_source import ShardSource
from vsmux.proto import query
from vsmux.topology import TabletInfo

__all__ = ["SharedHealth"]


class SharedHealth:
    """The health reports of one tablet, fanned out; see the module docstring."""

    def __init__(self, source: ShardSource, nursery: trio.Nursery, linger: float) -> None:
        self._source = source
        self._nursery = nursery
        self._linger = linger
        self._watchers = 0
        self._running = False
        self._latest: query.StreamHealthResponse | None = None
        self._reports = 0  # reports received by the current upstream stream
        self._generation = 0  # upstream streams started
        self._ended: dict[int, VStreamError | None] = {}
        self._changed = trio.Event()
        self._membership = trio.Event()

    @property
    def tablet(self) -> TabletInfo:
        return self._source.tablet

    @property
    def watchers(self) -> int:
        return self._watchers

    def watch(
        self,
    ) -> AbstractAsyncContextManager[AsyncIterator[query.StreamHealthResponse]]:
        """Watch the tablet's health until the ``async with`` block exits."""
        return self._watch()

    @asynccontextmanager
    async def _watch(self) -> AsyncIterator[AsyncIterator[query.StreamHealthResponse]]:
        if not self._running:
            self._start()
        self._watchers += 1
        self._wake_membership()
        try:
            async with aclosing(self._follow(self._generation)) as reports:
                yield reports
        finally:
            self._watchers -= 1
            self._wake_membership()

    async def _follow(self, generation: int) -> AsyncGenerator[query.StreamHealthResponse, None]:
        seen = 0
        while True:
            if generation != self._generation:
                # Our stream ended and another replaced it: report how ours ended.
                error = self._ended.get(generation)
                if error is not None:
                    raise VStreamError(error.code, error.message)
                return
            latest = self._latest
            if latest is not None and self._reports > seen:
                seen = self._reports
                yield latest
                continue
            if generation in self._ended:
                error = self._ended[generation]
                if error is not None:
                    raise VStreamError(error.code, error.message)
                return
            await self._changed.wait()

    def _start(self) -> None:
        self._running = True
        self._generation += 1
        self._latest = None
        self._reports = 0
        # Keep only the last few endings: watchers of older streams are long gone.
        for old in [g for g in self._ended if g < self._generation - 4]:
            del self._ended[old]
        self._nursery.start_soon(self._run, self._generation)

    async def _run(self, generation: int) -> None:
        error: VStreamError | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._close_when_unwatched, nursery.cancel_scope)
                try:
                    async with self._source.stream_health() as reports:
                        async for report in reports:
                            if generation != self._generation:
                                break  # closing, and a newer stream took over
                            self._latest = report
                            self._reports += 1
                            self._wake_changed()
                except VStreamError as err:
                    error = err
                nursery.cancel_scope.cancel()
        except Exception as exc:  # a bug: keep the hub alive, tell the watchers
            error = VStreamError(Code.INTERNAL, f"health watch failed unexpectedly: {exc!r}")
        finally:
            self._ended[generation] = error
            if generation == self._generation:
                self._running = False
                self._latest = None
            self._wake_changed()

    async def _close_when_unwatched(self, scope: trio.CancelScope) -> None:
        while True:
            while self._watchers:
                await self._membership.wait()
            with trio.move_on_after(self._linger):
                while not self._watchers:
                    await self._membership.wait()
            if not self._watchers:
                # The stream is closing from here on: a watcher that comes
                # before it has closed starts a new one rather than follow
                # this one to its end (an end means "stopped reporting").
                self._running = False
                scope.cancel()
                return

    def _wake_changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _wake_membership(self) -> None:
        self._membership.set()
        self._membership = trio.Event()
