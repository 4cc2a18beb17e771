"""The asyncio<->Trio bridge: batching, backpressure, flushing, cancellation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
import trio_asyncio

from vsmux.core.metrics import Metrics
from vsmux.errors import Code, VStreamError
from vsmux.transport._bridge import QUEUE_DEPTH, ClientGone, pump_responses

Send = Callable[[list[bytes]], Awaitable[None]]


class Recorder:
    """An asyncio-side writer that records each crossing and can be held."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.gate = trio.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.entered = trio.Event()

    async def _enter(self) -> None:
        self.entered.set()
        await self.gate.wait()

    async def write(self, bodies: list[bytes]) -> None:
        # Runs in asyncio: wait on the Trio gate through the bridge primitive.
        await trio_asyncio.trio_as_aio(self._enter)()
        if self.fail is not None:
            raise self.fail
        self.calls.append(bodies)


async def test_batches_arrive_in_order_and_coalesce(aio_loop: None) -> None:
    rec = Recorder()
    rec.gate = trio.Event()  # hold the first write
    metrics = Metrics()
    sent = trio.Event()

    async def run(send: Send) -> None:
        await send([b"a"])
        await rec.entered.wait()  # the writer now holds [a]
        await send([b"b", b"c"])
        await send([b"d"])
        sent.set()

    async with trio.open_nursery() as nursery:

        async def release() -> None:
            await sent.wait()
            assert metrics.gateway[QUEUE_DEPTH] == 2
            rec.gate.set()

        nursery.start_soon(release)
        await pump_responses(run, rec.write, metrics=metrics)

    # The first batch crossed alone; the two queued behind it crossed together.
    assert rec.calls == [[b"a"], [b"b", b"c", b"d"]]
    assert metrics.gateway[QUEUE_DEPTH] == 0
    assert metrics.gateway["bytes_sent"] == 4
    assert metrics.gateway["responses_sent"] == 4


async def test_slow_client_blocks_send_at_the_bound(aio_loop: None) -> None:
    rec = Recorder()
    rec.gate = trio.Event()
    progress: list[int] = []

    async def run(send: Send) -> None:
        await send([b"\x00"])
        progress.append(0)
        await rec.entered.wait()  # the writer now holds batch 0
        for i in range(1, 10):
            await send([bytes([i])])
            progress.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: pump_responses(run, rec.write, queue_batches=2))
        await trio.testing.wait_all_tasks_blocked()
        # One batch is held by the writer, two fill the queue, the fourth waits.
        assert progress == [0, 1, 2]
        rec.gate.set()
    assert [b for call in rec.calls for b in call] == [bytes([i]) for i in range(10)]


async def test_error_is_raised_after_queued_batches_are_written(aio_loop: None) -> None:
    rec = Recorder()

    async def run(send: Send) -> None:
        await send([b"x"])
        await send([b"y"])
        raise VStreamError(Code.NOT_FOUND, "keyspace nope not found")

    with pytest.raises(VStreamError) as info:
        await pump_responses(run, rec.write)
    assert info.value.code == Code.NOT_FOUND
    assert [b for call in rec.calls for b in call] == [b"x", b"y"]


async def test_stop_ends_the_session_with_unavailable(aio_loop: None) -> None:
    rec = Recorder()
    stop = trio.Event()
    cancelled = False

    async def run(send: Send) -> None:
        nonlocal cancelled
        await send([b"first"])
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled = True
            raise

    async with trio.open_nursery() as nursery:

        async def stopper() -> None:
            await trio.testing.wait_all_tasks_blocked()
            stop.set()

        nursery.start_soon(stopper)
        with pytest.raises(VStreamError) as info:
            await pump_responses(run, rec.write, stop=stop)
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == "server shutting down"
    assert cancelled
    assert rec.calls == [[b"first"]]


async def test_write_failure_cancels_the_session(aio_loop: None) -> None:
    rec = Recorder()
    rec.fail = ConnectionResetError("peer gone")
    metrics = Metrics()
    cancelled = False

    async def run(send: Send) -> None:
        nonlocal cancelled
        try:
            for _ in range(100):
                await send([b"z"])
        except trio.Cancelled:
            cancelled = True
            raise

    with pytest.raises(ClientGone):
        await pump_responses(run, rec.write, metrics=metrics)
    assert cancelled
    assert metrics.gateway[QUEUE_DEPTH] == 0


async def test_outer_cancel_stops_everything_at_once(aio_loop: None) -> None:
    rec = Recorder()
    rec.gate = trio.Event()  # the client never reads
    metrics = Metrics()

    async def run(send: Send) -> None:
        while True:
            await send([b"q"])

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: pump_responses(run, rec.write, metrics=metrics))
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught
    assert rec.calls == []
    assert metrics.gateway[QUEUE_DEPTH] == 0
    # Only this test's own task remains besides the fixture's loop tasks.
    await trio.testing.wait_all_tasks_blocked()


class DirectWriter:
    """A ``write_now`` that writes (records) unless told it would have to wait."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.ready = True
        self.fail: Exception | None = None

    def __call__(self, bodies: list[bytes]) -> bool:
        if self.fail is not None:
            raise self.fail
        if not self.ready:
            return False
        self.calls.append(bodies)
        return True


async def test_an_idle_writer_lets_send_write_from_trio(aio_loop: None) -> None:
    rec = Recorder()
    direct = DirectWriter()
    metrics = Metrics()

    async def run(send: Send) -> None:
        await send([b"a"])
        await send([b"b", b"c"])

    await pump_responses(run, rec.write, write_now=direct, metrics=metrics)
    assert direct.calls == [[b"a"], [b"b", b"c"]]
    assert rec.calls == []  # the asyncio writer was never needed
    assert metrics.gateway["responses_sent"] == 3
    assert metrics.gateway["bytes_sent"] == 3


async def test_direct_writes_wait_for_what_is_queued_ahead(aio_loop: None) -> None:
    # Order on the wire: once a batch went to the asyncio writer, later ones
    # follow it there until it has written everything it took.
    rec = Recorder()
    rec.gate = trio.Event()
    direct = DirectWriter()
    direct.ready = False  # the first batch would have to wait: it is queued

    async def run(send: Send) -> None:
        await send([b"a"])
        await rec.entered.wait()  # the writer holds [a]
        direct.ready = True
        await send([b"b"])  # [a] is being written: this one queues behind it
        rec.gate.set()
        await trio.testing.wait_all_tasks_blocked()  # the writer wrote both, and waits
        assert rec.calls == [[b"a"], [b"b"]]
        await send([b"c"])  # nothing ahead any more: written directly

    await pump_responses(run, rec.write, write_now=direct)
    assert rec.calls == [[b"a"], [b"b"]]
    assert direct.calls == [[b"c"]]


async def test_a_failing_direct_write_ends_the_session_as_client_gone(aio_loop: None) -> None:
    rec = Recorder()
    direct = DirectWriter()
    direct.fail = ConnectionResetError("peer reset")
    reached: list[str] = []

    async def run(send: Send) -> None:
        await send([b"a"])
        reached.append("after")

    with pytest.raises(ClientGone, match="peer reset"):
        await pump_responses(run, rec.write, write_now=direct)
    assert reached == []
