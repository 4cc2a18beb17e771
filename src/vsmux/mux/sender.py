"""The sender: the only writer to the client.

It takes items from the request's channel in order and

- for a :class:`~vsmux.mux.items.Parcel`, applies each unit's position events
  to the :class:`~vsmux.core.positions.PositionBook` (GTID/LASTPK become VGTID
  events, in place, so a VGTID always precedes its COMMIT) and packs each
  unit into its own responses (see "One unit per response" below), adding the
  ``<keyspace>.`` table prefix to FIELD/ROW events as they are written; a
  unit a feed prepared (:mod:`vsmux.core.prepared`) only gets its VGTID;
- coalesces below the message layer: after the first parcel it keeps taking
  every parcel already queued (no waiting) until :data:`COALESCE_BYTES` are
  packed or :data:`MAX_PARCELS_PER_SEND` parcels are, and hands all of their
  responses to the client in ONE ``send`` call (which writes them to the
  connection in one go), so per-send costs are paid once per batch, not once
  per response;
- answers :class:`~vsmux.mux.items.Barrier`, applies
  :class:`~vsmux.mux.items.JournalSwap` and ends on
  :class:`~vsmux.mux.items.Stop` in channel order, each only after everything
  queued before it was handed to ``send``;
- sends :class:`~vsmux.mux.items.Packed` responses as they are and raises a
  :class:`~vsmux.mux.items.Failed` item's error (what is left of a parcel
  handled by :meth:`Sender.deliver_now`);
- returns when every streamer has closed its end of the channel.

A shared stream's feed may deliver a parcel without waking the sender:
while the sender waits with nothing queued, :meth:`Sender.deliver_now`
packs it and writes it from the feed's task, if the client's connection
takes it without waiting (the ``send`` must be a
:class:`~vsmux.mux.api.SendNow`).

One unit per response. A ``VStreamResponse`` holds exactly one unit: one
transaction (BEGIN ... VGTID, COMMIT, or the events a DDL, OTHER or ROLLBACK
ends), one forwarded JOURNAL transaction, one COPY_COMPLETED, one gateway
HEARTBEAT, or the ``[VGTID, OTHER]`` a ``current`` start begins with. A unit
larger than ``max_response_bytes`` continues over consecutive responses with
nothing else in between (units are packed whole into one ``send``), and so do
the pieces of a chunked transaction. The reason is the clients: vtgate sends
each unit as its own response, and Debezium's connector relies on it. It
buffers one response as at most one transaction, fails on a BEGIN after a
COMMIT in the same response, and stamps every event of a response with the
response's last VGTID, so two transactions in one response would let its
stored offset run ahead of what it processed.

With a heartbeat interval it sends ``[HEARTBEAT]`` (wall-clock timestamp and
current_time, no keyspace/shard) whenever nothing was sent for that long;
every send restarts the idle timer. Timers use Trio's clock. The idle time
is watched by a task beside the sender, which writes the heartbeat itself
while the sender waits for items, so that wait carries no deadline.

Per item the work is one ``receive_nowait`` while the channel has items, and
one awaited ``send`` per batch of items: there is no per-event await.
Cancellation (the request ends) interrupts a pending client send or wait and
propagates; what was packed but not yet sent is dropped with the request.
"""

from __future__ import annotations

import time

import trio

from vsmux.core.metrics import Metrics
from vsmux.core.positions import PositionBook
from vsmux.core.prepared import PreparedUnit
from vsmux.errors import VStreamError
from vsmux.mux.api import SendNow, SendResponses
from vsmux.mux.items import Barrier, Failed, Item, JournalSwap, Packed, Parcel, Stop
from vsmux.mux.malformed import malformed_event
from vsmux.proto import binlogdata
from vsmux.wire import Frame, FrameError, ResponsePacker, frame_of

__all__ = ["COALESCE_BYTES", "MAX_PARCELS_PER_SEND", "Sender", "heartbeat_frame"]

#: Bytes of responses gathered into one client send, about (the parcel that
#: crosses it still goes along). Only parcels already queued are taken, and
#: the first of them waits while the rest are packed (~2 µs per event with the
#: Python wire loops, well under 1 µs with the C ones), so this bounds that wait
#: to ~2 ms at worst; it also keeps the batch being packed in the CPU's
#: cache (packing 2 MiB at a time was 5-10% slower per event in a
#: microbenchmark). ~10 vttablet-sized tablet responses per send already cut
#: per-send costs (bridge hand-off, HTTP/2 framing) tenfold.
COALESCE_BYTES = 256 * 1024

#: Parcels coalesced into one client send at most, for streams of small
#: transactions (one per tablet response), where the byte bound comes late.
MAX_PARCELS_PER_SEND = 64


def heartbeat_frame() -> Frame:
    """A gateway heartbeat stamped with the wall clock."""
    now = time.time_ns()
    return frame_of(
        binlogdata.VEvent(
            type=binlogdata.VEventType.HEARTBEAT, timestamp=now // 1_000_000_000, current_time=now
        )
    )


class Sender:
    """The only writer to the client: turns queued units into responses, one unit each.

    ``run`` takes items from the request's channel, turns GTID and LASTPK
    into VGTID events from its position book (which it alone updates, as it
    hands each unit over), packs every unit into its own response(s) and
    sends what is queued in one awaited call; with nothing to send for
    ``heartbeat_interval`` it sends a heartbeat. Cancellation stops it at an
    await: what was handed to ``send`` is the client's, what was not has not
    moved the position book.
    """

    def __init__(
        self,
        book: PositionBook,
        send: SendResponses,
        metrics: Metrics,
        *,
        max_response_bytes: int,
        heartbeat_interval: float,
        rename_tables: bool = True,
    ) -> None:
        self.book = book
        self._send = send
        self._send_now = send.now if isinstance(send, SendNow) else None
        self._metrics = metrics
        self._packer = ResponsePacker(max_response_bytes)
        self._interval = heartbeat_interval
        self._rename = rename_tables
        self._last_send = trio.current_time()
        # True while _deliver waits for an item (the heartbeat task may write then).
        self._waiting = False
        # Set while the heartbeat task's send is under way.
        self._heartbeat_sending: trio.Event | None = None
        self._heartbeat_failure: Exception | None = None

    async def run(self, receive: trio.MemoryReceiveChannel[Item]) -> None:
        """Deliver items until Stop or end of channel; see the module doc."""
        async with receive:
            if self._interval <= 0:
                await self._deliver(receive)
                return
            failure: Exception | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeats, nursery.cancel_scope)
                try:
                    await self._deliver(receive)
                except Exception as exc:  # raised below, not as an exception group
                    failure = exc
                nursery.cancel_scope.cancel()
            failure = failure or self._heartbeat_failure
            if failure is not None:
                raise failure

    async def _deliver(self, receive: trio.MemoryReceiveChannel[Item]) -> None:
        packer = self._packer
        while True:
            try:
                item = receive.receive_nowait()
            except trio.WouldBlock:
                # Parked without a deadline: the heartbeat task watches the
                # idle time, so a wait costs no cancel scope (a deadline set
                # and cleared per wait was ~6% of a shared stream's delivery).
                self._waiting = True
                try:
                    item = await receive.receive()
                except trio.EndOfChannel:
                    await self._heartbeat_sent()
                    return
                finally:
                    self._waiting = False
            except trio.EndOfChannel:
                await self._heartbeat_sent()
                return
            parcels = 0
            # Pack this parcel and every one already queued behind it; stop
            # at a control item, which must wait for the send.
            while type(item) is Parcel:
                self._pack(item)
                parcels += 1
                if parcels >= MAX_PARCELS_PER_SEND or packer.pending_bytes >= COALESCE_BYTES:
                    break
                try:
                    item = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break  # the outer loop waits, or sees the end
            if packer.events:
                await self._heartbeat_sent()
                await self._flush()
            if type(item) is Packed:
                await self._heartbeat_sent()
                await self._send(item.bodies)
                self._last_send = trio.current_time()
            elif type(item) is Failed:
                raise item.error
            elif type(item) is Barrier:
                await self._heartbeat_sent()
                item.delivered.set()
            elif type(item) is JournalSwap:
                self.book.replace(item.participants, item.shard_gtids)
            elif type(item) is Stop:
                await self._heartbeat_sent()
                return

    def deliver_now(self, parcel: Parcel) -> Item | None:
        """Hand ``parcel`` to the client from the caller's task, without waking the sender.

        Only for a caller that has made sure the sender waits for an item
        with none queued or on its way (the channel is empty and the sender
        is among its waiting receivers), so nothing may go before
        ``parcel``. It is packed as the sender would pack it and written if
        that needs no wait. Returns None when that is done; otherwise the
        item the caller must queue in its place: ``parcel`` itself when the
        sender cannot take it now (its ``send`` cannot write at once, or a
        heartbeat's send is under way), :class:`Packed` when the write must
        wait (the positions are already applied), :class:`Failed` when
        packing raised. Never waits; raises only for a bug.
        """
        send_now = self._send_now
        if send_now is None or self._heartbeat_sending is not None or not self._waiting:
            return parcel
        try:
            self._pack(parcel)
        except VStreamError as err:
            self._packer.take()  # the request fails: what was packed goes nowhere
            return Failed(err)
        bodies = self._packer.take()
        if not bodies:
            return None
        if not send_now(bodies):
            return Packed(bodies)
        self._last_send = trio.current_time()
        return None

    async def _heartbeats(self, scope: trio.CancelScope) -> None:
        """Send a heartbeat whenever the sender has waited an interval with nothing sent.

        Runs beside :meth:`_deliver` until cancelled. It writes only while
        the sender waits for an item (so its packer is empty); a sender that
        wakes meanwhile waits for the heartbeat's send before its own
        (:meth:`_heartbeat_sent`), so there is still one writer at a time. A
        send failure is kept for :meth:`run` and cancels ``scope``.
        Cancellation may interrupt the heartbeat's send.
        """
        interval = self._interval
        while True:
            await trio.sleep_until(self._last_send + interval)
            now = trio.current_time()
            if now < self._last_send + interval:
                continue  # something was sent meanwhile
            if not self._waiting:
                # Busy (a send waits on a slow client): like the sender's own
                # loop, no heartbeat then; look again an interval from now.
                await trio.sleep_until(now + interval)
                continue
            sent = self._heartbeat_sending = trio.Event()
            try:
                self._packer.add_unit([heartbeat_frame()])
                await self._flush()
            except Exception as exc:
                self._heartbeat_failure = exc
                scope.cancel()
                return
            finally:
                self._heartbeat_sending = None
                sent.set()

    async def _heartbeat_sent(self) -> None:
        """Wait until a heartbeat being sent is written (rare: its send waits)."""
        sending = self._heartbeat_sending
        if sending is not None:
            await sending.wait()

    def _pack(self, parcel: Parcel) -> None:
        """Apply ``parcel``'s positions and add its units to the packer (no await)."""
        book = self.book
        key = parcel.key
        packer = self._packer
        keyspace = key[0] if self._rename else None
        events = 0
        last: Frame | None = None
        for unit in parcel.units:
            if isinstance(unit, PreparedUnit):
                try:
                    vgtid = book.gtid_vgtid(unit.gtid, key)
                except FrameError as err:
                    raise malformed_event(err, parcel.tablet, key, "position event") from None
                frames = unit.frames
                body = unit.body(vgtid) if keyspace is not None else None
                if body is not None and unit.max_bytes == packer.max_bytes:
                    packer.add_body(body, len(frames))
                else:
                    self._add_unit(unit.with_vgtid(vgtid), keyspace, parcel)
            else:
                frames = unit.frames
                if unit.controls:
                    try:
                        book.apply_controls(frames, unit.controls, key)
                    except FrameError as err:
                        raise malformed_event(err, parcel.tablet, key, "position event") from None
                if not frames:
                    continue
                self._add_unit(frames, keyspace, parcel)
            events += len(frames)
            last = frames[-1]
        if last is None:
            return
        metrics = self._metrics
        metrics.add("VStreamsEventsStreamed", parcel.labels, events)
        header = last.header()
        if header.timestamp and header.current_time:
            lag = header.current_time / 1e9 - header.timestamp
            metrics.set("VStreamsLag", parcel.labels, max(lag, 0.0))

    def _add_unit(self, frames: list[Frame], keyspace: str | None, parcel: Parcel) -> None:
        try:
            self._packer.add_unit(frames, keyspace)
        except FrameError as err:
            raise malformed_event(err, parcel.tablet, parcel.key) from None

    async def _flush(self) -> None:
        """Hand everything packed to the client in one call."""
        await self._send(self._packer.take())
        self._last_send = trio.current_time()
