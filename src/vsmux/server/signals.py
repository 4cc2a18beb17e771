"""Waiting for the signal that stops a long-running command.

``vsmux serve``, ``vsmux cluster`` and ``vsmux fake-tablet`` run until SIGINT
or SIGTERM. :func:`stop_signals` installs the receiver first, before anything
is announced, so a Ctrl-C right after the banner still ends the run cleanly;
:meth:`StopSignals.wait` then waits for one.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

__all__ = ["StopSignals", "stop_signals"]

#: The signals that end a run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT and SIGTERM, received since :func:`stop_signals` was entered."""

    def __init__(self, signals: AsyncIterator[int]) -> None:
        self._signals = signals

    async def wait(self) -> str:
        """Wait for SIGINT or SIGTERM (one received earlier counts); its name.

        Cancelled, it stops waiting; a signal that arrives later is still kept.
        """
        async for signum in self._signals:
            return signal.Signals(signum).name
        raise RuntimeError("the signal receiver closed")  # pragma: no cover - it never ends

    async def start_unless_stopped(
        self, nursery: trio.Nursery, start: Callable[..., Awaitable[Any]], *args: Any
    ) -> str | None:
        """``nursery.start(start, *args)``, or the name of a stop signal that comes first.

        For starts that retry until something outside answers (etcd): a
        signal must be able to end the wait. Returns None once started; on a
        signal the start is abandoned (its task is cancelled).
        """
        stopped: list[str] = []
        async with trio.open_nursery() as race:

            async def started() -> None:
                await nursery.start(start, *args)
                race.cancel_scope.cancel()

            async def signalled() -> None:
                stopped.append(await self.wait())
                race.cancel_scope.cancel()

            race.start_soon(started)
            race.start_soon(signalled)
        return stopped[0] if stopped else None


@contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Receive SIGINT and SIGTERM instead of their default action while the block runs.

    Must be entered from Trio's main thread.
    """
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        yield StopSignals(signals)
