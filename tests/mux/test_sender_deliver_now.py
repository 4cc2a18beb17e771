"""``Sender.deliver_now``: a parcel written from the caller's task while the sender waits.

Whatever path a parcel takes (written at once, queued as packed responses,
or refused and queued as itself), the client gets the same responses in the
same order as if every parcel had gone through the channel, and a packing
error still ends the sender with that error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from tests.mux.scripted import T, ev
from tests.mux.test_sender_coalescing import Recorder, book, parcel
from vsmux.core.grouping import Unit
from vsmux.core.metrics import Metrics
from vsmux.errors import VStreamError
from vsmux.mux.api import SendNow
from vsmux.mux.items import Failed, Item, Packed, Parcel
from vsmux.mux.sender import Sender
from vsmux.wire import Frame, decode_event, split_response


class NowClient(Recorder):
    """A :class:`Recorder` that can also take bodies at once, unless told to refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = False
        self.now_calls = 0

    def now(self, bodies: list[bytes], /) -> bool:
        self.now_calls += 1
        if self.refuse:
            return False
        self.bodies.append(bodies)
        self.calls.append([[decode_event(f) for f in split_response(b)] for b in bodies])
        return True


def _sender(client: Recorder, interval: float = 0.0) -> Sender:
    return Sender(
        book(), client, Metrics(), max_response_bytes=1 << 20, heartbeat_interval=interval
    )


def _gtids(client: Recorder) -> list[str]:
    return [
        sg.gtid
        for call in client.calls
        for body in call
        for event in body
        if event.type == T.VGTID and event.vgtid is not None
        for sg in event.vgtid.shard_gtids
        if sg.shard == event.shard
    ]


@asynccontextmanager
async def _running(
    client: Recorder, interval: float = 0.0
) -> AsyncIterator[tuple[Sender, trio.MemorySendChannel[Item]]]:
    """A sender over a new channel, started and waiting for items; closing the channel ends it."""
    sender = _sender(client, interval)
    send, receive = trio.open_memory_channel[Item](8)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.run, receive)
        await trio.testing.wait_all_tasks_blocked()
        async with send:
            yield sender, send


def test_the_bridges_send_is_a_send_now() -> None:
    assert isinstance(NowClient(), SendNow)
    assert not isinstance(Recorder(), SendNow)


async def test_an_idle_sender_writes_at_once_without_its_task() -> None:
    client = NowClient()
    async with _running(client) as (sender, _send):
        for n in (1, 2, 3):
            assert sender.deliver_now(parcel("-40", n)) is None
        assert len(client.calls) == 3 and client.times == []  # no awaited send at all
    assert _gtids(client) == [f"MySQL56/-40:1-{n}" for n in (1, 2, 3)]
    # The VGtid of each carries the other shards' positions as the book has them.
    assert sender.book.shard_gtid(("ks", "-40")).gtid == "MySQL56/-40:1-3"  # type: ignore[union-attr]


async def test_a_write_that_must_wait_is_queued_packed_and_keeps_its_place() -> None:
    client = NowClient()
    async with _running(client) as (sender, send):
        assert sender.deliver_now(parcel("-40", 1)) is None
        client.refuse = True
        item = sender.deliver_now(parcel("-40", 2))
        assert isinstance(item, Packed)
        # Positions are applied when packed, before the write.
        assert sender.book.shard_gtid(("ks", "-40")).gtid == "MySQL56/-40:1-2"  # type: ignore[union-attr]
        send.send_nowait(item)
        send.send_nowait(parcel("-40", 3))  # after it, through the channel as usual
        await trio.testing.wait_all_tasks_blocked()
    assert _gtids(client) == [f"MySQL56/-40:1-{n}" for n in (1, 2, 3)]
    assert len(client.times) == 2  # the packed one and the parcel after it were awaited


async def test_without_send_now_or_while_not_waiting_the_parcel_comes_back() -> None:
    plain = Recorder()
    sender = _sender(plain)
    first = parcel("-40", 1)
    assert sender.deliver_now(first) is first  # no SendNow
    client = NowClient()
    sender = _sender(client)
    second = parcel("-40", 2)
    assert sender.deliver_now(second) is second  # its task is not waiting for items
    assert client.now_calls == 0 and client.calls == []


async def test_a_heartbeat_being_sent_makes_the_parcel_wait_behind_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    client = NowClient()
    client.refuse = True  # so the heartbeat's send is awaited
    client.gate = trio.Event()  # and held
    async with _running(client, interval=1.0) as (sender, send):
        await trio.sleep(1.5)  # the heartbeat's send is under way, held at the gate
        assert len(client.calls) == 1
        client.refuse = False
        one = parcel("-40", 1)
        assert sender.deliver_now(one) is one
        send.send_nowait(one)
        client.gate.set()
        client.gate = None
        await trio.testing.wait_all_tasks_blocked()
    kinds = [[e.type for body in call for e in body] for call in client.calls]
    assert kinds[0] == [T.HEARTBEAT] and T.COMMIT in kinds[1]


async def test_a_packing_error_comes_back_as_failed_and_ends_the_sender() -> None:
    client = NowClient()
    sender = _sender(client)
    send, receive = trio.open_memory_channel[Item](8)
    broken = Frame(int(T.GTID), b"\x08\x01\x1a\xff")  # a GTID event cut in its gtid
    bad = Parcel(("ks", "-40"), ("ks", "-40", "PRIMARY"), [Unit([ev(T.BEGIN), broken], [1])], "t1")
    errors: list[VStreamError] = []

    async def run() -> None:
        try:
            await sender.run(receive)
        except VStreamError as err:
            errors.append(err)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.testing.wait_all_tasks_blocked()
        item = sender.deliver_now(bad)
        assert isinstance(item, Failed)
        send.send_nowait(item)
    assert len(errors) == 1 and "malformed position event for ks/-40" in errors[0].message
    assert client.calls == []
