"""Journal convergence on trio Events.

Each participant of a converging journal calls :meth:`Convergence.arrive`.
Every participant but the last waits on the journal's Event; the last one
gets ``True`` back, does the swap (or the stop), then calls
:meth:`Convergence.release`, which wakes the others so they can end.
The decisions live in :class:`vsmux.core.journal.JournalTracker`.
"""

from __future__ import annotations

import trio

from vsmux.core.journal import JournalTracker
from vsmux.core.positions import ShardKey
from vsmux.proto import binlogdata

__all__ = ["Convergence"]


class Convergence:
    """Where the shard streams of one request meet at a reshard journal.

    One per request (``RequestContext.convergence``). The grouper asks
    :meth:`concerns` whether a journal ends this stream; a streamer whose
    stream ended at one calls :meth:`arrive`. Every participant but the last
    then calls :meth:`wait`; the last one swaps the shards (or stops the
    request) and calls :meth:`release`, which wakes the others so they end.
    The decisions are :class:`vsmux.core.journal.JournalTracker`'s; this class
    adds one trio Event per journal.

    A stream that started past its journal never reads it; it arrives by
    the heartbeat rule instead (:meth:`passed`, see
    :mod:`vsmux.core.journal`), once another participant has arrived.

    A cancelled :meth:`wait` raises and leaves nothing to undo. There is no
    timeout: a participant that has not arrived yet reads its journal later,
    fails, which ends the request, goes silent, which the liveness watch
    catches, or, having started past its journal, arrives at its tablet's
    next heartbeat.
    """

    def __init__(self, tracker: JournalTracker) -> None:
        self.tracker = tracker
        self._done: dict[int, trio.Event] = {}

    def concerns(self, journal: binlogdata.Journal, key: ShardKey) -> bool:
        return self.tracker.concerns(journal, key)

    def passed(self, key: ShardKey, heard_at: int) -> binlogdata.Journal | None:
        """The journal ``key``'s unanchored stream passed: ask on each heartbeat it hears."""
        return self.tracker.passed(key, heard_at)

    def arrive(self, journal: binlogdata.Journal, key: ShardKey, written_at: int = 0) -> bool:
        """Record ``key``'s arrival (``written_at``: the JOURNAL's timestamp); True if last."""
        self._done.setdefault(journal.id, trio.Event())
        return self.tracker.arrive(journal, key, written_at)

    async def wait(self, journal: binlogdata.Journal) -> None:
        """Wait until the last participant released the journal.

        No timeout: a participant that never arrives is either failing (and
        the request fails with it), caught by the liveness check, or past its
        journal, which its tablet's next heartbeat shows (:meth:`passed`).
        """
        await self._done[journal.id].wait()

    def release(self, journal: binlogdata.Journal) -> None:
        self._done.pop(journal.id).set()
