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
