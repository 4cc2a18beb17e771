"""Liveness: a request whose tablets all fall silent ends instead of hanging.

Every batch from any tablet (heartbeats included) calls :meth:`Liveness.touch`.
:meth:`Liveness.watch` runs in the request's nursery and raises UNAVAILABLE
with the text operators grep for once nothing has arrived for
``liveness_timeout`` seconds.
"""

from __future__ import annotations

from typing import NoReturn

import trio

from vsmux.core.liveness import hung_error

__all__ = ["Liveness"]


class Liveness:
    """The request-wide watch that ends a request whose tablets all fell silent.

    The session makes one per request and runs :meth:`watch` in the request's
    nursery; every shard streamer calls :meth:`touch` for each batch it
    receives. A batch holding only tablet heartbeats counts too, so a quiet
    but healthy stream stays alive. Once no batch has come from any tablet for
    ``timeout`` seconds, :meth:`watch` raises UNAVAILABLE with vtgate's text
    (``docs/vitess.md`` §4.2) and the first-error rule ends the request.

    It holds only a timestamp: cancelling :meth:`watch` when the request ends
    leaves nothing behind.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.last_activity = trio.current_time()

    def touch(self) -> None:
        self.last_activity = trio.current_time()

    async def watch(self) -> NoReturn:
        """Sleep until the silence is too long, then raise. Cancellation: nothing to undo."""
        while True:
            deadline = self.last_activity + self.timeout
            if trio.current_time() >= deadline:
                raise hung_error(self.timeout)
            await trio.sleep_until(deadline)
