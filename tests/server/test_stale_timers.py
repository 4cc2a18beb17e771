"""Stale timers are dropped, live ones still fire."""

from __future__ import annotations

import asyncio
import weakref

import trio
import trio.testing
import trio_asyncio

from vsmux.server.memory import release_memory
from vsmux.server.stale_timers import prune_trio_deadlines
from vsmux.transport import forget_cancelled_asyncio_timers


def _must_not_run() -> None:
    raise AssertionError("a cancelled timer ran")


async def _leave_stale_deadlines(count: int) -> None:
    # Each scope exits before its deadline: its heap entry stays behind.
    for _ in range(count):
        with trio.move_on_after(1000):
            await trio.lowlevel.checkpoint()


async def test_stale_trio_deadlines_are_dropped_and_live_ones_still_fire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fired: list[float] = []

    async def live(after: float) -> None:
        with trio.move_on_after(after):
            await trio.sleep_forever()
        fired.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(live, 5.0)
        nursery.start_soon(live, 2000.0)
        await trio.testing.wait_all_tasks_blocked()
        await _leave_stale_deadlines(300)
        assert prune_trio_deadlines() >= 300
        assert prune_trio_deadlines() == 0  # nothing stale is left
    assert [round(t - start) for t in fired] == [5, 2000]


def test_outside_a_trio_run_nothing_is_pruned() -> None:
    assert prune_trio_deadlines() == 0
    assert forget_cancelled_asyncio_timers() == 0


async def test_cancelled_asyncio_timers_are_forgotten_and_live_ones_still_fire() -> None:
    async with trio_asyncio.open_loop() as loop:
        handles = [loop.call_later(1000, _must_not_run) for _ in range(20)]
        for handle in handles:
            handle.cancel()
        refs = [weakref.ref(handle) for handle in handles]
        del handles, handle
        fired = asyncio.Event()  # asyncio's: set from an asyncio callback
        loop.call_later(0.05, fired.set)
        await trio.sleep(0.01)  # the loop files the timers into its heap
        assert all(ref() is not None for ref in refs)  # the loop's heap keeps them
        assert forget_cancelled_asyncio_timers() == 20
        assert forget_cancelled_asyncio_timers() == 0
        assert all(ref() is None for ref in refs)
        await trio_asyncio.aio_as_trio(fired.wait)()


async def test_a_release_drops_stale_timers() -> None:
    await _leave_stale_deadlines(100)
    assert release_memory([]).timers_dropped >= 100
