"""Exclusive use of the sender for a chunked transaction.

Whole units never interleave because each is one channel item. A chunked
transaction is several items, so while one shard streams its pieces no other
shard may put a unit into the channel. The shard takes the gate with
:meth:`SendGate.acquire`; every streamer calls :meth:`SendGate.wait_turn`
right before each send.

Why a check right before ``send`` is enough: between ``wait_turn`` returning
and the item entering the channel's FIFO (its buffer or its queue of blocked
senders) there is no checkpoint, so a shard that takes the gate afterwards
queues its first piece behind that item, and everything checking later waits.
"""

from __future__ import annotations

import trio

from vsmux.core.positions import ShardKey

__all__ = ["SendGate"]


class SendGate:
    """Lets one shard at a time own the sender while it sends a chunked transaction.

    One per request (``RequestContext.gate``). A shard streamer whose open
    transaction passed ``transaction_chunk_size`` calls :meth:`acquire` before
    its first piece and :meth:`release` after the terminating one; every
    streamer calls :meth:`wait_turn` right before it puts anything into the
    channel, so no other unit lands between two pieces. A streamer releases
    the gate on every exit too, so a failed shard never leaves it held.

    :meth:`wait_turn` and :meth:`acquire` just raise when cancelled; a
    cancelled :meth:`acquire` has not taken the gate.
    """

    def __init__(self) -> None:
        self.owner: ShardKey | None = None
        self._freed = trio.Event()

    async def wait_turn(self, key: ShardKey) -> None:
        """Return once no other shard holds the gate. Cancellation: just raises."""
        while self.owner is not None and self.owner != key:
            await self._freed.wait()

    async def acquire(self, key: ShardKey) -> None:
        """Take the gate for ``key`` (waiting for a current holder to finish)."""
        while self.owner is not None and self.owner != key:
            await self._freed.wait()
        self.owner = key

    def release(self, key: ShardKey) -> None:
        """Give the gate back; a no-op for a shard that does not hold it."""
        if self.owner == key:
            self.owner = None
            self._freed.set()
            self._freed = trio.Event()
