"""The asyncio loop under Trio runs every ready callback per Trio step."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest
import trio
import trio_asyncio

from vsmux.transport import _aio_batching as aio_batching
from vsmux.transport._aio_batching import batch_ready_callbacks, batching_installed
from vsmux.transport._bridge import pump_responses


@pytest.fixture
def batched() -> Iterator[None]:
    was = batching_installed()
    assert batch_ready_callbacks()
    yield
    if not was:
        aio_batching._restore()


@pytest.fixture
def upstream() -> Iterator[None]:
    was = batching_installed()
    aio_batching._restore()
    yield
    if was:
        batch_ready_callbacks()


async def _steps_until_done(loop: asyncio.AbstractEventLoop, callbacks: int) -> int:
    """Trio checkpoints another task passes before ``callbacks`` queued callbacks ran."""
    ran: list[int] = []
    for i in range(callbacks):
        loop.call_soon(ran.append, i)
    steps = 0
    with trio.fail_after(10):
        while len(ran) < callbacks:
            await trio.lowlevel.checkpoint()
            steps += 1
    assert ran == list(range(callbacks))  # in order
    return steps


async def test_ready_callbacks_run_in_one_trio_step(batched: None) -> None:
    async with trio_asyncio.open_loop() as loop:
        assert await _steps_until_done(loop, 200) <= 2


async def test_upstream_driver_takes_a_trio_step_per_callback(upstream: None) -> None:
    # What batching fixes: one scheduler pass per asyncio callback.
    async with trio_asyncio.open_loop() as loop:
        assert await _steps_until_done(loop, 200) >= 150


async def test_a_callback_chain_does_not_starve_trio(batched: None) -> None:
    # Callbacks scheduled by callbacks wait for the next step, as in asyncio,
    # so a callback that always reschedules itself still lets Trio run.
    async with trio_asyncio.open_loop() as loop:
        spins = 0
        spinning = True

        def spin() -> None:
            nonlocal spins
            spins += 1
            if spinning:
                loop.call_soon(spin)

        loop.call_soon(spin)
        with trio.fail_after(5):
            for _ in range(50):
                await trio.lowlevel.checkpoint()
        spinning = False  # else closing the loop would run the chain forever
        assert 10 <= spins <= 200


async def test_asyncio_tasks_and_crossings_still_work(batched: None) -> None:
    async with trio_asyncio.open_loop():

        async def in_asyncio(n: int) -> int:
            await asyncio.sleep(0)
            return await trio_asyncio.trio_as_aio(in_trio)(n) + 1

        async def in_trio(n: int) -> int:
            await trio.lowlevel.checkpoint()
            return n * 2

        results = []
        async with trio.open_nursery() as nursery:

            async def one(n: int) -> None:
                results.append(await trio_asyncio.aio_as_trio(in_asyncio)(n))

            for n in range(20):
                nursery.start_soon(one, n)
        assert sorted(results) == [n * 2 + 1 for n in range(20)]


async def test_stop_and_timers_behave_as_upstream(batched: None) -> None:
    async with trio_asyncio.open_loop() as loop:
        fired = trio.Event()
        loop.call_later(0.01, fired.set)
        with trio.fail_after(5):
            await fired.wait()
    # Leaving open_loop stopped the loop through the batched driver.
    assert loop.is_closed()


def test_install_is_idempotent(batched: None) -> None:
    assert batch_ready_callbacks()
    assert batching_installed()


async def _passes_until_written(busy_asyncio_tasks: int) -> int:
    """Trio passes between a session's send and its asyncio writer getting the batch.

    ``busy_asyncio_tasks`` asyncio tasks keep stepping meanwhile (as tablet
    streams and other sessions' writers do in a loaded gateway).
    """
    written = trio.Event()

    async def write(bodies: list[bytes]) -> None:
        written.set()

    stop = False

    async def busy() -> None:
        while not stop:  # noqa: ASYNC110 - stepping is the point: a callback queued each time
            await asyncio.sleep(0)

    async def run(send: Callable[[list[bytes]], Awaitable[None]]) -> None:
        await send([b"heartbeat"])
        passes = 0
        with trio.fail_after(10):
            while not written.is_set():
                await trio.lowlevel.checkpoint()
                passes += 1
        result.append(passes)

    result: list[int] = []
    async with trio_asyncio.open_loop() as loop:
        tasks = [loop.create_task(busy()) for _ in range(busy_asyncio_tasks)]
        await trio.sleep(0.01)  # they are all stepping now
        await pump_responses(run, write)
        stop = True
        await trio_asyncio.aio_as_trio(asyncio.gather)(*tasks)
    return result[0]


async def test_a_batch_reaches_the_writer_in_a_few_passes_under_load(batched: None) -> None:
    assert await _passes_until_written(200) <= 4


async def test_upstream_driver_makes_the_writer_wait_behind_every_callback(
    upstream: None,
) -> None:
    # The 2-4 s gaps with 200 clients: each callback queued ahead costs a pass.
    assert await _passes_until_written(200) >= 100
