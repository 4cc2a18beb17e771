"""The sender: the only writer to the client.

It takes items from the request's channel in order and

- for a :class:`~vsmux.mux.items.Parcel`, applies each unit's position events
  to the :class:`~vsmux.core.positions.PositionBook` (GTID/LASTPK become VGTID
  events, in place, so a VGTID always precedes its COMMIT), packs the frames
  into responses of at most ``max_response_bytes`` and hands them to the
  client in one call;
- answers :class:`~vsmux.mux.items.Barrier` and applies
  :class:`~vsmux.mux.items.JournalSwap` in channel order;
- returns on :class:`~vsmux.mux.items.Stop` or when every streamer has closed
  its end of the channel.

With a heartbeat interval it sends ``[HEARTBEAT]`` (wall-clock timestamp and
current_time, no keyspace/shard) whenever nothing was sent for that long;
every send restarts the idle timer. Timers use Trio's clock.

Per item the work is one ``receive_nowait`` while the channel has items, and
one awaited ``send``: there is no per-event await. Cancellation (the request
ends) interrupts a pending client send or wait and propagates.
"""

from __future__ import annotations

import time

import trio

from vsmux.core.metrics import Metrics
from vsmux.core.positions import PositionBook
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import SendResponses
from vsmux.mux.items import Barrier, Item, JournalSwap, Parcel, Stop
from vsmux.proto import binlogdata
from vsmux.wire import Frame, FrameError, frame_of, pack_responses

__all__ = ["Sender", "heartbeat_frame"]


def heartbeat_frame() -> Frame:
    """A gateway heartbeat stamped with the wall clock."""
    now = time.time_ns()
    return frame_of(
        binlogdata.VEvent(
            type=binlogdata.VEventType.HEARTBEAT, timestamp=now // 1_000_000_000, current_time=now
        )
    )


class Sender:
    def __init__(
        self,
        book: PositionBook,
        send: SendResponses,
        metrics: Metrics,
        *,
        max_response_bytes: int,
        heartbeat_interval: float,
    ) -> None:
        self.book = book
        self._send = send
        self._metrics = metrics
        self._max_bytes = max_response_bytes
        self._interval = heartbeat_interval
        self._last_send = trio.current_time()

    async def run(self, receive: trio.MemoryReceiveChannel[Item]) -> None:
        """Deliver items until Stop or end of channel; see the module doc."""
        async with receive:
            while True:
                try:
                    item = receive.receive_nowait()
                except trio.WouldBlock:
                    waited = await self._idle(receive)
                    if waited is None:
                        return
                    item = waited
                except trio.EndOfChannel:
                    return
                if type(item) is Parcel:
                    await self._deliver(item)
                elif type(item) is Barrier:
                    item.delivered.set()
                elif type(item) is JournalSwap:
                    self.book.replace(item.participants, item.shard_gtids)
                elif type(item) is Stop:
                    return

    async def _idle(self, receive: trio.MemoryReceiveChannel[Item]) -> Item | None:
        """The next item, sending heartbeats while none comes; None at end of channel."""
        try:
            if self._interval <= 0:
                return await receive.receive()
            while True:
                with trio.move_on_at(self._last_send + self._interval):
                    return await receive.receive()
                await self._write([heartbeat_frame()])
        except trio.EndOfChannel:
            return None

    async def _deliver(self, parcel: Parcel) -> None:
        book = self.book
        key = parcel.key
        frames: list[Frame] = []
        try:
            for unit in parcel.units:
                if unit.controls:
                    book.apply_controls(unit.frames, unit.controls, key)
                frames += unit.frames
        except FrameError as err:
            raise VStreamError(
                Code.INTERNAL,
                f"a position event from {key[0]}/{key[1]} is malformed: {err}; "
                "check the tablet's version",
            ) from None
        if not frames:
            return
        metrics = self._metrics
        metrics.add("VStreamsEventsStreamed", parcel.labels, len(frames))
        header = frames[-1].header()
        if header.timestamp and header.current_time:
            lag = header.current_time / 1e9 - header.timestamp
            metrics.set("VStreamsLag", parcel.labels, max(lag, 0.0))
        await self._write(frames)

    async def _write(self, frames: list[Frame]) -> None:
        await self._send(pack_responses(frames, self._max_bytes))
        self._last_send = trio.current_time()
