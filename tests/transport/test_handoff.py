"""The asyncio<->Trio handoff: wakeups both ways, backpressure, ending, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
import trio
import trio.testing
import trio_asyncio
from trio.testing import MockClock

from vsmux.transport._handoff import Handoff


def start_in_asyncio(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """An asyncio task on the trio-asyncio loop, started from Trio code."""
    return trio_asyncio.current_loop.get().create_task(coro)


async def outcome_of(task: asyncio.Task[Any]) -> str:
    """How an asyncio task ended: "cancelled", the repr of its error, or "ok"."""
    with trio.fail_after(1):  # virtual seconds (MockClock): fails only on a hang
        await trio_asyncio.aio_as_trio(asyncio.wait)([task])
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return "ok" if error is None else type(error).__name__


# -- asyncio producer, Trio consumer (the tablet client) ------------------------------


async def test_trio_consumer_wakes_when_asyncio_puts(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(2)
    got: list[int] = []

    async def consume() -> None:
        while True:
            try:
                got.append(await handoff.get_in_trio())
            except trio.EndOfChannel:
                return

    async def produce() -> None:
        for i in range(5):
            await handoff.put_in_asyncio(i)
        handoff.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # the consumer waits on an empty handoff
        task = start_in_asyncio(produce())
        assert await outcome_of(task) == "ok"
    assert got == [0, 1, 2, 3, 4]
    assert trio.current_time() == 0  # nothing waited on time


async def test_asyncio_producer_waits_while_full(aio_loop: None, autojump_clock: MockClock) -> None:
    handoff: Handoff[int] = Handoff(2)
    put: list[int] = []

    async def produce() -> None:
        for i in range(3):
            await handoff.put_in_asyncio(i)
            put.append(i)

    task = start_in_asyncio(produce())
    await trio.testing.wait_all_tasks_blocked()
    assert put == [0, 1]  # the third waits for room
    assert len(handoff) == 2
    assert await handoff.get_in_trio() == 0  # taking one wakes the producer
    assert await outcome_of(task) == "ok"
    assert put == [0, 1, 2]
    assert [await handoff.get_in_trio(), await handoff.get_in_trio()] == [1, 2]


async def test_trio_cancellation_ends_a_waiting_asyncio_producer(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    # How the tablet client stops: Trio cancels the asyncio call task.
    handoff: Handoff[int] = Handoff(1)
    handoff.put_nowait(0)
    reached_end = False

    async def produce() -> None:
        nonlocal reached_end
        await handoff.put_in_asyncio(1)
        reached_end = True

    with trio.CancelScope() as scope:

        async def cancel_when_blocked() -> None:
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_when_blocked)
            await trio_asyncio.aio_as_trio(produce)()
    assert scope.cancelled_caught
    assert not reached_end
    assert len(handoff) == 1  # the cancelled put queued nothing
    assert await handoff.get_in_trio() == 0
    # The producer slot is free again.
    await trio_asyncio.aio_as_trio(handoff.put_in_asyncio)(2)
    assert await handoff.get_in_trio() == 2


async def test_a_cancel_arriving_with_the_wakeup_is_kept(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    # The asyncio producer is woken (room made) and cancelled before it runs
    # again: it must end cancelled, not carry on as if nothing happened.
    handoff: Handoff[int] = Handoff(1)
    handoff.put_nowait(0)
    task = start_in_asyncio(handoff.put_in_asyncio(1))
    await trio.testing.wait_all_tasks_blocked()
    assert handoff.get_nowait() == 0  # resolves the producer's future ...
    task.cancel()  # ... and the cancel lands before the producer runs again
    assert await outcome_of(task) == "cancelled"
    assert len(handoff) == 0


async def test_abandon_fails_a_waiting_asyncio_producer(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(1)
    handoff.put_nowait(0)
    task = start_in_asyncio(handoff.put_in_asyncio(1))
    await trio.testing.wait_all_tasks_blocked()
    handoff.abandon()
    assert await outcome_of(task) == "BrokenResourceError"
    assert len(handoff) == 0  # queued items are dropped with the consumer
    with pytest.raises(trio.BrokenResourceError):
        handoff.put_nowait(2)


async def test_trio_consumer_cancelled_while_waiting_leaves_no_trace(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await handoff.get_in_trio()
    assert scope.cancelled_caught
    with trio.move_on_after(1) as waited:
        await handoff.get_in_trio()  # waits on the empty handoff until cancelled
    assert waited.cancelled_caught
    assert trio.current_time() == 1
    # A later put still wakes a new consumer.
    got: list[int] = []

    async def consume() -> None:
        got.append(await handoff.get_in_trio())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        await trio_asyncio.aio_as_trio(handoff.put_in_asyncio)(7)
    assert got == [7]


# -- Trio producer, asyncio consumer (the client writer) --------------------------------


async def test_asyncio_consumer_takes_everything_queued_and_wakes_the_producer(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[str] = Handoff(2)
    put: list[str] = []

    async def produce() -> None:
        for item in "abc":
            await handoff.put_in_trio(item)
            put.append(item)
        handoff.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        await trio.testing.wait_all_tasks_blocked()
        assert put == ["a", "b"]  # full: "c" waits
        batches: list[list[str]] = []

        async def consume() -> None:
            while True:
                try:
                    batches.append(await handoff.get_all_in_asyncio())
                except trio.EndOfChannel:
                    return

        await trio_asyncio.aio_as_trio(consume)()
    assert put == ["a", "b", "c"]
    assert batches == [["a", "b"], ["c"]]  # one wakeup took both queued items


async def test_asyncio_consumer_wakes_when_trio_puts(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(4)
    task = start_in_asyncio(handoff.get_all_in_asyncio())
    await trio.testing.wait_all_tasks_blocked()
    assert not task.done()
    await handoff.put_in_trio(1)
    assert await outcome_of(task) == "ok"
    assert task.result() == [1]


async def test_client_gone_cancels_the_waiting_asyncio_consumer(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    # grpclib cancels the handler's task when the client disconnects.
    handoff: Handoff[int] = Handoff(1)
    task = start_in_asyncio(handoff.get_all_in_asyncio())
    await trio.testing.wait_all_tasks_blocked()
    task.cancel()
    assert await outcome_of(task) == "cancelled"
    # The consumer slot is free: a new one gets the next item.
    handoff.put_nowait(3)
    assert await trio_asyncio.aio_as_trio(handoff.get_all_in_asyncio)() == [3]


async def test_trio_producer_cancelled_while_full_queues_nothing(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(1)
    await handoff.put_in_trio(1)
    with trio.move_on_after(5) as scope:
        await handoff.put_in_trio(2)
    assert scope.cancelled_caught
    assert trio.current_time() == 5
    assert await trio_asyncio.aio_as_trio(handoff.get_all_in_asyncio)() == [1]
    await handoff.put_in_trio(3)  # the producer slot was released
    assert await trio_asyncio.aio_as_trio(handoff.get_all_in_asyncio)() == [3]


async def test_abandon_fails_a_waiting_trio_producer(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(1)
    await handoff.put_in_trio(1)
    failures: list[str] = []

    async def produce() -> None:
        try:
            await handoff.put_in_trio(2)
        except trio.BrokenResourceError:
            failures.append("broken")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        await trio.testing.wait_all_tasks_blocked()
        handoff.abandon()
    assert failures == ["broken"]


async def test_close_ends_the_asyncio_consumer_after_the_queued_items(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(2)
    await handoff.put_in_trio(1)
    handoff.close()
    get_all = trio_asyncio.aio_as_trio(handoff.get_all_in_asyncio)
    assert await get_all() == [1]
    with pytest.raises(trio.EndOfChannel):
        await get_all()
    with pytest.raises(trio.ClosedResourceError):
        handoff.put_nowait(2)


async def test_one_waiter_per_side(aio_loop: None, autojump_clock: MockClock) -> None:
    handoff: Handoff[int] = Handoff(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handoff.get_in_trio)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="one consumer"):
            await handoff.get_in_trio()
        handoff.put_nowait(1)
    with pytest.raises(ValueError, match="at least one"):
        Handoff[int](0)


async def test_trio_consumer_takes_everything_queued_in_one_get(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(3)
    producer = start_in_asyncio(handoff.put_in_asyncio(0))
    assert await outcome_of(producer) == "ok"
    for i in (1, 2):
        handoff.put_nowait(i)
    blocked = start_in_asyncio(handoff.put_in_asyncio(3))  # full: waits
    await trio.testing.wait_all_tasks_blocked()
    assert not blocked.done()
    assert await handoff.get_all_in_trio() == [0, 1, 2]
    assert await outcome_of(blocked) == "ok"  # taking the lot woke the producer
    assert await handoff.get_all_in_trio() == [3]
    handoff.close()
    with pytest.raises(trio.EndOfChannel):
        await handoff.get_all_in_trio()


async def test_get_all_in_trio_waits_while_empty_and_can_be_cancelled(
    aio_loop: None, autojump_clock: MockClock
) -> None:
    handoff: Handoff[int] = Handoff(2)
    with trio.move_on_after(5) as scope:
        await handoff.get_all_in_trio()
    assert scope.cancelled_caught
    handoff.put_nowait(7)  # the cancelled wait left nothing behind
    assert await handoff.get_all_in_trio() == [7]


async def test_a_byte_budget_bounds_the_queue_but_one_item_always_fits() -> None:
    handoff: Handoff[str] = Handoff(4, budget=150)
    handoff.put_nowait("a", 100)
    handoff.put_nowait("b", 100)  # 100 queued: under the budget, so it fits
    assert handoff.full and handoff.weight == 200
    with pytest.raises(trio.WouldBlock):
        handoff.put_nowait("c", 1)
    assert handoff.get_nowait() == "a"
    assert handoff.weight == 100 and not handoff.full
    handoff.put_nowait("c", 1)
    assert await handoff.get_all_in_trio() == ["b", "c"]
    assert handoff.weight == 0
    handoff.put_nowait("huge", 10_000)  # alone it always fits
    assert handoff.full
    handoff.abandon()
    assert handoff.weight == 0


async def test_without_a_budget_weights_do_not_matter() -> None:
    handoff: Handoff[str] = Handoff(2)
    handoff.put_nowait("a", 10**9)
    handoff.put_nowait("b", 10**9)
    assert handoff.full  # by count only
    assert [handoff.get_nowait(), handoff.get_nowait()] == ["a", "b"]
