"""Faults a test or demo can inject into one simulated tablet's streams.

Every VStream of the tablet consults the same :class:`TabletFaults`:

- :meth:`~TabletFaults.fail_after` fails a stream with a chosen code and
  message once the tablet has sent ``events`` more events (counted over all its
  streams from the moment the fault is armed), optionally only at a point
  inside a transaction;
- :meth:`~TabletFaults.end_after` ends a stream without error the same way;
- :meth:`~TabletFaults.stall` stops all output, heartbeats included, until
  :meth:`~TabletFaults.resume`;
- :meth:`~TabletFaults.slow_down` sleeps before every response.

Triggers fire once by default (the stream that crosses the threshold) and
persist with ``once=False``. Cutting a batch keeps the events before the
trigger point, as if the tablet died after sending them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import trio

from vsmux.errors import Code
from vsmux.proto.binlogdata import VEventType
from vsmux.wire.frames import Frame

__all__ = ["FaultAction", "TabletFaults", "Trigger"]


class FaultAction(enum.Enum):
    """What a :class:`Trigger` does to the stream that reaches it.

    FAIL raises the trigger's code and message, as a tablet that errors out;
    END ends the stream without an error, as a tablet that went away.
    """

    FAIL = "fail"
    END = "end"


@dataclass(slots=True)
class Trigger:
    """Fire ``action`` once the tablet's event counter reaches ``at_event``."""

    action: FaultAction
    at_event: int
    code: Code = Code.UNAVAILABLE
    message: str = ""
    mid_transaction: bool = False
    once: bool = True


_OPENS = (int(VEventType.BEGIN),)
_CLOSES = (int(VEventType.COMMIT), int(VEventType.ROLLBACK))


class TabletFaults:
    """Armed faults and the tablet's running count of events sent."""

    def __init__(self) -> None:
        self.events_sent = 0
        self.delay_per_response = 0.0
        self._triggers: list[Trigger] = []
        self._unstalled: trio.Event | None = None

    # -- arming --------------------------------------------------------------

    def fail_after(
        self,
        events: int = 0,
        code: Code = Code.UNAVAILABLE,
        message: str = "simulated tablet failure",
        *,
        mid_transaction: bool = False,
        once: bool = True,
    ) -> Trigger:
        """Fail a stream after ``events`` more events (0: at its next send)."""
        trigger = Trigger(
            FaultAction.FAIL, self.events_sent + events, code, message, mid_transaction, once
        )
        self._triggers.append(trigger)
        return trigger

    def end_after(self, events: int = 0, *, once: bool = True) -> Trigger:
        """End a stream cleanly (no error) after ``events`` more events."""
        trigger = Trigger(FaultAction.END, self.events_sent + events, once=once)
        self._triggers.append(trigger)
        return trigger

    def stall(self) -> None:
        """Send nothing at all (no events, no heartbeats) until :meth:`resume`."""
        if self._unstalled is None:
            self._unstalled = trio.Event()

    def resume(self) -> None:
        if self._unstalled is not None:
            self._unstalled.set()
            self._unstalled = None

    def slow_down(self, seconds_per_response: float) -> None:
        """Sleep this long before every response (0 turns it off)."""
        self.delay_per_response = seconds_per_response

    def clear(self) -> None:
        """Disarm everything and resume a stall."""
        self._triggers.clear()
        self.delay_per_response = 0.0
        self.resume()

    @property
    def stalled(self) -> bool:
        return self._unstalled is not None

    # -- used by streams -----------------------------------------------------

    async def before_send(self) -> None:
        """Wait out a stall and any slow-down; cancellable."""
        while self._unstalled is not None:
            await self._unstalled.wait()
        if self.delay_per_response > 0:
            await trio.sleep(self.delay_per_response)

    def cut(self, batch: list[Frame], in_transaction: bool) -> tuple[list[Frame], Trigger | None]:
        """Count ``batch`` as sent; if a trigger fires, the part sent before it.

        ``in_transaction`` says whether the stream was inside a transaction
        before this batch.
        """
        if not self._triggers:
            self.events_sent += len(batch)
            return batch, None
        fired = self._due(in_transaction)
        if fired is not None:
            return [], fired
        for index, frame in enumerate(batch):
            self.events_sent += 1
            if frame.type in _OPENS:
                in_transaction = True
            elif frame.type in _CLOSES:
                in_transaction = False
            fired = self._due(in_transaction)
            if fired is not None:
                return batch[: index + 1], fired
        return batch, None

    def _due(self, in_transaction: bool) -> Trigger | None:
        for trigger in self._triggers:
            if self.events_sent >= trigger.at_event and (
                in_transaction or not trigger.mid_transaction
            ):
                if trigger.once:
                    self._triggers.remove(trigger)
                return trigger
        return None
