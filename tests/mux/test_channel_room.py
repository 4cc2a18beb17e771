"""channel_room answers what MemorySendChannel.statistics() would."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from vsmux.mux.channel_room import Room, _by_statistics, channel_room


def _expected(channel: trio.MemorySendChannel[Any]) -> Room:
    stats = channel.statistics()
    used = stats.current_buffer_used
    return used, used >= stats.max_buffer_size, stats.tasks_waiting_receive


async def test_matches_statistics_through_a_channels_states() -> None:
    send, receive = trio.open_memory_channel[int](2)
    fast, slow = channel_room(send), _by_statistics(send)
    seen: list[Room] = []

    def check() -> None:
        assert fast() == slow() == _expected(send)
        seen.append(fast())

    check()  # empty, nobody waiting
    send.send_nowait(1)
    check()
    send.send_nowait(2)
    check()  # full
    assert receive.receive_nowait() == 1
    assert receive.receive_nowait() == 2
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive.receive)
        await trio.testing.wait_all_tasks_blocked()
        check()  # a receiver waits
        send.send_nowait(3)  # handed straight to it
        check()
    assert seen == [(0, False, 0), (1, False, 0), (2, True, 0), (0, False, 1), (0, False, 0)]


async def test_unbuffered_channel_is_always_full() -> None:
    send, _receive = trio.open_memory_channel[int](0)
    assert channel_room(send)() == (0, True, 0)


def test_falls_back_when_the_layout_is_unknown() -> None:
    class Other:
        def statistics(self) -> Any:
            send, _ = trio.open_memory_channel[int](3)
            send.send_nowait(7)
            return send.statistics()

    room = channel_room(Other())  # type: ignore[arg-type]
    assert room() == (1, False, 0)
