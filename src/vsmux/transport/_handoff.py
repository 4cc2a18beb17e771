"""A bounded queue between asyncio and Trio code, with no crossing per item.

trio-asyncio runs the asyncio loop inside one Trio task: asyncio callbacks
and Trio tasks take turns on one thread, so plain synchronous calls between
them are safe (nothing runs concurrently with them). Crossing with
``aio_as_trio``/``trio_as_aio`` costs ~100 us of CPU per call; a
:class:`Handoff` passes each item with a deque append and wakes the other
side with that side's own primitive (an asyncio future or a Trio event set
synchronously). Each side waits only on its own framework's primitive, and
only when it must: the consumer when the queue is empty, the producer when it
is full.

One producer and one consumer. Either may be the asyncio side:

    asyncio ──put_in_asyncio──▶ [deque, capacity] ──get_(all_)in_trio──▶ Trio
    Trio    ──put_in_trio─────▶ [deque, capacity] ──get_all_in_asyncio──▶ asyncio

Ending: the producer calls :meth:`Handoff.close` (the consumer drains what is
queued, then gets ``trio.EndOfChannel``); the consumer calls
:meth:`Handoff.abandon` (queued items are dropped and the producer's puts
raise ``trio.BrokenResourceError``).

Cancellation: a put or get cancelled while it waits (Trio cancellation, or
``asyncio.CancelledError`` for the asyncio side) leaves the queue as it was;
the item being put is not queued. A wakeup never carries an item, the woken
side re-checks the queue, so a side cancelled right after being woken loses
nothing. The asyncio side never awaits Trio: its waits are plain asyncio
futures, so cancelling its task always ends it (asyncio keeps a cancel that
arrives after the future is resolved and raises it at the next step).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

__all__ = ["Handoff"]

T = TypeVar("T")

Wake = Callable[[], None]


class Handoff(Generic[T]):
    """Up to ``capacity`` items from one producer to one consumer across the loops.

    With a ``budget``, items also carry a weight (bytes, say: given to the
    put) and the handoff counts as full once the queued weight reaches the
    budget, so it holds at most the budget plus one item; one item always
    fits, however heavy.

    Every method must be called on the thread running ``trio_asyncio``;
    ``*_in_asyncio`` methods from asyncio code, ``*_in_trio`` from Trio code.
    """

    def __init__(self, capacity: int, budget: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"a handoff holds at least one item, not {capacity}")
        self.capacity = capacity
        self.budget = budget
        self._items: deque[T] = deque()
        self._weights: deque[int] = deque()
        #: Total weight of the queued items.
        self.weight = 0
        self._closed = False
        self._abandoned = False
        self._wake_getter: Wake | None = None
        self._wake_putter: Wake | None = None

    def __len__(self) -> int:
        return len(self._items)

    # -- either side, synchronous ------------------------------------------------

    @property
    def full(self) -> bool:
        """A put would wait: ``capacity`` items, or the budget's weight, are queued."""
        items = len(self._items)
        return items >= self.capacity or (
            self.budget > 0 and items > 0 and self.weight >= self.budget
        )

    def put_nowait(self, item: T, weight: int = 0) -> None:
        """Queue ``item`` (of ``weight``); ``trio.WouldBlock`` when full.

        Raises ``trio.ClosedResourceError`` after :meth:`close` and
        ``trio.BrokenResourceError`` after :meth:`abandon`.
        """
        if self._closed:
            raise trio.ClosedResourceError("the handoff was closed by its producer")
        if self._abandoned:
            raise trio.BrokenResourceError("the consumer has gone")
        if self.full:
            raise trio.WouldBlock
        self._items.append(item)
        self._weights.append(weight)
        self.weight += weight
        self._wake(getter=True)

    def get_nowait(self) -> T:
        """The next item; ``trio.WouldBlock`` when empty, ``trio.EndOfChannel`` at the end."""
        if not self._items:
            raise trio.EndOfChannel if self._closed else trio.WouldBlock
        item = self._items.popleft()
        self.weight -= self._weights.popleft()
        self._wake(getter=False)
        return item

    def _take_all(self) -> list[T]:
        items = list(self._items)
        self._items.clear()
        self._weights.clear()
        self.weight = 0
        self._wake(getter=False)
        return items

    def close(self) -> None:
        """Producer: no more items. The consumer gets what is queued, then the end."""
        self._closed = True
        self._wake(getter=True)

    def abandon(self) -> None:
        """Consumer: stop reading. Queued items are dropped; puts fail from now on."""
        self._abandoned = True
        self._items.clear()
        self._weights.clear()
        self.weight = 0
        self._wake(getter=False)

    # -- producer ------------------------------------------------------------------

    async def put_in_asyncio(self, item: T, weight: int = 0) -> None:
        """Queue ``item`` (of ``weight``) from asyncio, waiting (asyncio future) while full."""
        while True:
            try:
                self.put_nowait(item, weight)
                return
            except trio.WouldBlock:
                pass
            future = asyncio.get_running_loop().create_future()
            await self._wait_asyncio(future, getter=False)

    async def put_in_trio(self, item: T) -> None:
        """Queue ``item`` from Trio, waiting (Trio event) while full.

        Checks for cancellation first, like every Trio checkpoint.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self.put_nowait(item)
                break
            except trio.WouldBlock:
                pass
            await self._wait_trio(getter=False)
        await trio.lowlevel.cancel_shielded_checkpoint()

    # -- consumer ------------------------------------------------------------------

    async def get_in_trio(self) -> T:
        """The next item, in Trio, waiting (Trio event) while empty.

        Raises ``trio.EndOfChannel`` once the producer closed and all is taken.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                item = self.get_nowait()
                break
            except trio.WouldBlock:
                pass
            await self._wait_trio(getter=True)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return item

    async def get_all_in_trio(self) -> list[T]:
        """Everything queued (at least one item), in Trio, waiting (Trio event) while empty.

        One checkpoint for the lot: a consumer that falls behind catches up
        with one wakeup instead of one per item. Raises ``trio.EndOfChannel``
        once the producer closed and all is taken.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._items:
            if self._closed:
                raise trio.EndOfChannel
            await self._wait_trio(getter=True)
        items = self._take_all()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return items

    async def get_all_in_asyncio(self) -> list[T]:
        """Everything queued (at least one item), in asyncio, waiting while empty.

        Raises ``trio.EndOfChannel`` once the producer closed and all is taken.
        """
        while not self._items:
            if self._closed:
                raise trio.EndOfChannel
            future = asyncio.get_running_loop().create_future()
            await self._wait_asyncio(future, getter=True)
        return self._take_all()

    # -- waiting and waking ----------------------------------------------------------

    def _wake(self, *, getter: bool) -> None:
        if getter:
            wake, self._wake_getter = self._wake_getter, None
        else:
            wake, self._wake_putter = self._wake_putter, None
        if wake is not None:
            wake()

    def _install(self, wake: Wake, *, getter: bool) -> None:
        if getter:
            if self._wake_getter is not None:
                raise RuntimeError("a handoff has one consumer; another is already waiting")
            self._wake_getter = wake
        else:
            if self._abandoned:
                raise trio.BrokenResourceError("the consumer has gone")
            if self._wake_putter is not None:
                raise RuntimeError("a handoff has one producer; another is already waiting")
            self._wake_putter = wake

    def _uninstall(self, wake: Wake, *, getter: bool) -> None:
        # Only if it is still ours: a wakeup already removed it.
        if getter and self._wake_getter is wake:
            self._wake_getter = None
        elif not getter and self._wake_putter is wake:
            self._wake_putter = None

    async def _wait_trio(self, *, getter: bool) -> None:
        event = trio.Event()
        wake = event.set
        self._install(wake, getter=getter)
        try:
            await event.wait()
        finally:
            self._uninstall(wake, getter=getter)

    async def _wait_asyncio(self, future: asyncio.Future[None], *, getter: bool) -> None:
        def wake() -> None:
            if not future.done():
                future.set_result(None)

        self._install(wake, getter=getter)
        try:
            await future
        finally:
            self._uninstall(wake, getter=getter)
