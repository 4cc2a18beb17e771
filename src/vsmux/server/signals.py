"""Waiting for the signal that stops a long-running command.

``vsmux serve``, ``vsmux cluster`` and ``vsmux fake-tablet`` run until SIGINT
or SIGTERM. :func:`stop_signals` installs the receiver first, before anything
is announced, so a Ctrl-C right after the banner still ends the run cleanly;
:meth:`StopSignals.wait` then waits for one.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

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


@contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Receive SIGINT and SIGTERM instead of their default action while the block runs.

    Must be entered from Trio's main thread.
    """
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        yield StopSignals(signals)
