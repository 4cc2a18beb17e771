"""How full a memory channel is, read without building a statistics object.

A shared stream's feed asks this of every consumer's channel for every batch
it hands out (:mod:`vsmux.mux.pushed`): with 50 consumers that is thousands
of times a second, and ``MemorySendChannel.statistics()`` builds a
seven-field object each time (~4% of a shared stream's delivery CPU).

:func:`channel_room` reads the three facts from the channel's state when it
has the layout Trio has kept since its first releases (a ``_state`` with a
``data`` deque, ``max_buffer_size`` and ``receive_tasks``); with any other
layout it falls back to ``statistics()``, so a Trio release that changes
its internals costs speed, not correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any

import trio

__all__ = ["Room", "channel_room"]

#: ``(queued items, whether the buffer is full, receivers waiting)``.
Room = tuple[int, bool, int]


def channel_room(channel: trio.MemorySendChannel[Any]) -> Callable[[], Room]:
    """A function answering :data:`Room` for ``channel`` each time it is called."""
    state = getattr(channel, "_state", None)
    data = getattr(state, "data", None)
    receivers = getattr(state, "receive_tasks", None)
    limit = getattr(state, "max_buffer_size", None)
    if not (isinstance(data, Sized) and isinstance(receivers, Sized) and limit is not None):
        return _by_statistics(channel)

    def read() -> Room:
        queued = len(data)
        return queued, queued >= limit, len(receivers)

    return read


def _by_statistics(channel: trio.MemorySendChannel[Any]) -> Callable[[], Room]:
    def read() -> Room:
        stats = channel.statistics()
        used = stats.current_buffer_used
        return used, used >= stats.max_buffer_size, stats.tasks_waiting_receive

    return read
