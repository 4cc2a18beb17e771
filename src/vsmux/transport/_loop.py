"""The asyncio loop that grpclib runs on, inside Trio.

grpclib is asyncio-only; vsmux runs it on trio-asyncio's loop, entered once
per process with :func:`asyncio_loop` around everything that serves or calls
gRPC. Leaving the block closes the loop; every task still on it is
cancelled first, so leave it only after the servers and calls opened inside
have been closed.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio_asyncio

from vsmux.transport._aio_batching import batch_ready_callbacks

__all__ = ["asyncio_loop", "forget_cancelled_asyncio_timers"]

log = logging.getLogger("vsmux.transport")


@asynccontextmanager
async def asyncio_loop(*, batch_callbacks: bool = False) -> AsyncIterator[None]:
    """Run the block with an asyncio loop for grpclib.

    With ``batch_callbacks`` (a gateway serving many sessions), asyncio
    callbacks run a batch per Trio step instead of one (see
    :mod:`vsmux.transport._aio_batching`); if trio-asyncio's driver is not the
    expected one, that is logged and the loop runs unbatched.
    """
    if batch_callbacks and not batch_ready_callbacks():
        log.warning(
            "trio-asyncio's loop driver is not the one expected: asyncio callbacks run "
            "one per Trio step, so clients see long pauses when many sessions run"
        )
    async with trio_asyncio.open_loop():
        yield


def forget_cancelled_asyncio_timers() -> int:
    """Remove cancelled timers from the current trio-asyncio loop's heap; returns how many.

    trio-asyncio keeps a cancelled asyncio timer (grpclib's call deadlines
    and keep-alives) in its heap until the timer's time comes; the memory
    release drops them (see :mod:`vsmux.server.stale_timers`). Reaches into
    trio-asyncio's private ``_timers``; 0 when that is not a list or no
    trio-asyncio loop runs in this context. Timers not cancelled stay and
    fire as before.
    """
    loop = trio_asyncio.current_loop.get(None)
    timers = getattr(loop, "_timers", None)
    if not isinstance(timers, list):
        return 0
    kept = [timer for timer in timers if not timer.cancelled()]
    dropped = len(timers) - len(kept)
    if dropped:
        heapq.heapify(kept)
        timers[:] = kept  # in place: the loop's driver holds this list
    return dropped
