"""Run every ready asyncio callback per Trio step, as asyncio's own loop does.

trio-asyncio (0.16) runs the asyncio loop as one Trio task that takes ONE
callback off its queue per Trio checkpoint: each ``call_soon`` handle (an
asyncio task step, a future's done-callback, a protocol's ``data_received``
follow-up) waits for a whole pass of Trio's scheduler, which runs every other
runnable task first. Every socket's reader also waits, after each read, until
the callbacks queued before it have run (``synchronize``). With a few
sessions that costs nothing; with hundreds, each pass is long and the queue
is long, so a callback waits for (queue length x pass length): a session's
asyncio writer sat idle for 2.4 s (median) between writes with 200 clients
while its Trio sender waited for room in the bridge, and every client saw
3-4 s gaps between responses (``benchmarks/bench_load.py``, BENCHMARKS.md).

:func:`batch_ready_callbacks` makes the loop task run, per Trio step, the
callbacks that were queued when the step began — asyncio's own rule
(``BaseEventLoop._run_once`` runs the handles ready at the start of an
iteration; ones they schedule wait for the next) — for at most
:data:`SLICE_SECONDS`, so one step never holds up every Trio task for long.
Callbacks still run one at a time, in order, on the same thread; a callback
that keeps scheduling callbacks still lets Trio run between batches. Only
the number of Trio checkpoints between them changes.

It replaces ``BaseTrioEventLoop._main_loop`` (trio-asyncio's private loop
driver, checked against trio-asyncio 0.16's source: the same shield, the same
exit). If the class no longer looks like that, nothing is replaced and
:func:`batch_ready_callbacks` returns False; the gateway then runs as
before, only slower under many sessions.
"""

from __future__ import annotations

import time
from typing import Any

import trio
from trio_asyncio._base import BaseTrioEventLoop, TrioAsyncioExit

__all__ = ["SLICE_SECONDS", "batch_ready_callbacks", "batching_installed"]

#: Longest run of asyncio callbacks per Trio step (one callback may overrun it).
#: Running every ready callback at once made one step take up to 1.3 s with
#: 200 sessions (each tablet stream's task splitting a 250 KB response), and
#: every Trio task, heartbeat timers included, waited for it. A few
#: milliseconds still runs hundreds of cheap callbacks per step, and keeps a
#: pass of Trio's scheduler short.
SLICE_SECONDS = 0.005

_original_main_loop = BaseTrioEventLoop._main_loop


async def _main_loop_batched(
    self: Any, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """trio-asyncio's ``_main_loop``, running every callback ready at each step."""
    self._stopped = trio.Event()
    task_status.started()
    try:
        # As upstream: shielded, so callbacks keep running until stop() is reached.
        with trio.CancelScope(shield=True):
            while not self._stopped.is_set():
                # Waits (a checkpoint) for the first callback or timer ...
                await self._main_loop_one()
                # ... then runs those queued by now without one each, for up to
                # SLICE_SECONDS. Callbacks they schedule are counted out: they
                # wait for the next step.
                until = time.perf_counter() + SLICE_SECONDS
                for _ in range(self._q_recv.statistics().current_buffer_used):
                    if self._stopped.is_set() or time.perf_counter() >= until:
                        break
                    try:
                        await self._main_loop_one(no_wait=True)
                    except trio.WouldBlock:
                        break
    except TrioAsyncioExit:
        pass
    finally:
        self._stopped.set()


def _looks_like_upstream() -> bool:
    # The driver we replace loops over _main_loop_one until _stopped is set.
    code = getattr(_original_main_loop, "__code__", None)
    names = code.co_names if code is not None else ()
    return (
        "_main_loop_one" in names
        and "_stopped" in names
        and callable(getattr(BaseTrioEventLoop, "_main_loop_one", None))
    )


def batch_ready_callbacks() -> bool:
    """Install the batched loop driver for loops started from now on; True if installed.

    Idempotent. Call before ``trio_asyncio.open_loop()``; a running loop
    keeps the driver it started with.
    """
    if BaseTrioEventLoop._main_loop is _main_loop_batched:
        return True
    if _original_main_loop is not BaseTrioEventLoop._main_loop or not _looks_like_upstream():
        return False
    BaseTrioEventLoop._main_loop = _main_loop_batched
    return True


def batching_installed() -> bool:
    """Whether loops started now run ready callbacks in batches."""
    return BaseTrioEventLoop._main_loop is _main_loop_batched


def _restore() -> None:
    """Put trio-asyncio's own driver back (tests and benchmarks compare the two)."""
    BaseTrioEventLoop._main_loop = _original_main_loop
