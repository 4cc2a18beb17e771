"""The send gate keeps a chunked transaction's pieces together in the channel."""

from __future__ import annotations

import trio
import trio.testing

from vsmux.mux.gate import SendGate

A = ("ks", "-80")
B = ("ks", "80-")
C = ("ks", "c0-")


async def test_pieces_are_not_interleaved_race() -> None:
    gate = SendGate()
    send, receive = trio.open_memory_channel[str](1)
    await send.send("filler")  # the channel is full: senders queue up

    async def put(key: tuple[str, str], item: str) -> None:
        await gate.wait_turn(key)
        await send.send(item)

    async def chunked() -> None:
        await gate.acquire(A)
        await send.send("A1")
        await send.send("A2")
        gate.release(A)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(put, B, "B")  # checked the gate before A took it
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(chunked)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(put, C, "C")  # must wait for A's last piece
        await trio.testing.wait_all_tasks_blocked()
        assert gate.owner == A
        got = [await receive.receive() for _ in range(5)]
    assert got == ["filler", "B", "A1", "A2", "C"]
    assert gate.owner is None


async def test_release_by_a_non_holder_is_a_no_op(autojump_clock: trio.abc.Clock) -> None:
    gate = SendGate()
    await gate.acquire(A)
    gate.release(B)
    assert gate.owner == A
    with trio.move_on_after(1.0) as scope:
        await gate.wait_turn(B)
    assert scope.cancelled_caught
    await gate.wait_turn(A)  # the holder passes
