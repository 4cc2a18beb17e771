"""One asyncio call running beside a Trio block, fed through a hand-off.

The tablet client and the gateway client both run a grpclib call as an
asyncio task that puts what arrives into a :class:`Handoff`, while the Trio
caller reads from it inside an ``async with`` block. :func:`call_beside` is
that frame: it starts the task, runs the block, and on leaving (normally, by
an error or by cancellation) abandons the hand-off and cancels the task, then
waits for it, so no call outlives the block. An error raised in the block
comes out as itself, not inside an exception group.

The task must only ever await asyncio things (grpclib and the hand-off's
futures): if it awaited a Trio call, a cancel arriving just as that call
finished would be lost (trio-asyncio resolves the future with the call's
result), and the task would go on waiting for its peer, which Trio, waiting
for the task, could not interrupt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_asyncio

from vsmux.transport._handoff import Handoff

__all__ = ["call_beside"]


@asynccontextmanager
async def call_beside(
    handoff: Handoff[Any], task: Callable[..., Awaitable[None]], *args: Any
) -> AsyncIterator[None]:
    """Run ``task(*args)`` on the asyncio loop for the duration of the block."""
    body_error: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio_asyncio.aio_as_trio(task), *args)
        try:
            yield
        except Exception as exc:
            # Kept aside so the caller gets its own exception back, not a group.
            body_error = exc
        finally:
            handoff.abandon()
            nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
