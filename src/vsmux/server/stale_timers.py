"""Dropping timers that can no longer fire, so a burst's memory can go back.

Both timer heaps the gateway runs on delete lazily:

- **Trio's deadline heap.** Every cancel scope with a deadline (each
  ``move_on_after``) pushes an entry; when the scope exits first, the entry
  stays, stale, until its deadline comes round or the heap has grown past
  twice its live entries plus a thousand. trio-asyncio's loop driver opens
  such a scope on every wait for asyncio work, with the next asyncio timer
  as its deadline, so a busy gateway keeps about a thousand stale entries.
- **trio-asyncio's timer heap.** A cancelled asyncio timer (grpclib's call
  deadlines and keep-alives) stays in the loop's heap until its time
  (:func:`vsmux.transport.forget_cancelled_asyncio_timers`, beside the loop
  it belongs to).

An entry is a few small objects, but the ones left when a burst of clients
ends were allocated during the burst, scattered over the small-object
allocator's 1 MiB arenas, and an arena goes back to the system only when
nothing in it lives: after 50 clients left, they were among the blocks that
kept those arenas (with the cancel scopes and task names they hold). The
memory release (:mod:`vsmux.server.memory`) drops them. On their own that
did not lower the RSS measurably: other long-lived blocks keep the same
arenas (BENCHMARKS.md, "Memory after a burst").

Both reach into private structures (Trio's ``Deadlines`` and trio-asyncio's
``_timers``); when those are not what is expected, nothing is touched and 0
is returned.
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["prune_trio_deadlines"]


def prune_trio_deadlines() -> int:
    """Drop the stale entries of the running Trio run's deadline heap; returns how many.

    0 outside a Trio run. Live deadlines are kept and fire as before.
    """
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return 0  # not in a Trio run (or not in its thread)
    runner: Any = getattr(getattr(trio._core._run, "GLOBAL_RUN_CONTEXT", None), "runner", None)
    deadlines: Any = getattr(runner, "deadlines", None)
    heap = getattr(deadlines, "_heap", None)
    prune = getattr(deadlines, "_prune", None)
    if not isinstance(heap, list) or not callable(prune):
        return 0
    prune()
    return len(heap) - len(deadlines._heap)
