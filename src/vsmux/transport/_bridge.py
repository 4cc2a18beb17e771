"""The crossings between grpclib (asyncio) and the Trio sessions.

A grpclib handler is an asyncio coroutine. It enters Trio once per call with
:func:`to_trio` and stays there for the whole session; responses travel back
to asyncio through :func:`pump_responses`, whose asyncio writer is started
once per session (one more crossing) and takes batches off a
:class:`~vsmux.transport._handoff.Handoff`:

    session ──send(batch)──▶ [Handoff, bounded] ──asyncio writer──▶ write(bodies)

Rules this module keeps:

- No crossing per response or per batch: the session queues a batch with a
  synchronous append, and the writer (asyncio) takes every batch queued in
  one go and writes them. A side waits on its own loop's primitive, and only
  when it must: the writer when nothing is queued, the session when
  ``BRIDGE_QUEUE_BATCHES`` batches are (a slow client pushes back on the
  shard streamers and, through them, on the tablets).
- A client that keeps up needs no writer at all: when nothing is queued or
  being written and the connection can take the batch without waiting
  (``write_now``), the session writes it itself, synchronously. Waking the
  asyncio writer means a callback in the asyncio loop's queue, behind every
  other callback; with 200 busy sessions that wait made clients' heartbeats
  2-3 s late.
- The session ending (normally or with an error) lets the writer flush what
  is queued first; the error is raised after that.
- Cancellation (client gone, deadline, server closing) cancels the session
  and the writer at once; nothing is written afterwards and no task outlives
  the call. The writer only awaits asyncio things (the handoff's future and
  ``write``), so cancelling it always ends it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio
import trio_asyncio

from vsmux.core.metrics import Metrics
from vsmux.errors import Code, VStreamError
from vsmux.transport._handoff import Handoff

__all__ = [
    "BRIDGE_QUEUE_BATCHES",
    "SESSIONS_ENDED",
    "SHUTTING_DOWN",
    "ClientGone",
    "pump_responses",
    "to_trio",
]

T = TypeVar("T")

# Batches queued between a session and its writer. Each batch is one `send` of
# the session (one or a few whole units, each response at most
# max_response_bytes). The writer takes the whole queue per wakeup, so a
# deeper queue would not save wakeups; it would only hold more memory per
# slow client. Four lets the session prepare the next units while the writer
# waits on the transport, and keeps the worst case near 4 x the response limit.
BRIDGE_QUEUE_BATCHES = 4

# What a session ends with when the server is told to stop.
SHUTTING_DOWN = "server shutting down"

# Gateway-wide gauges/counters kept in Metrics.gateway.
QUEUE_DEPTH = "bridge_queued_batches"
BYTES_SENT = "bytes_sent"
RESPONSES_SENT = "responses_sent"
# Sessions whose pump has ended (the memory release watches it: server/memory.py).
SESSIONS_ENDED = "sessions_ended"

Write = Callable[[list[bytes]], Awaitable[None]]
WriteNow = Callable[[list[bytes]], bool]


class ClientGone(Exception):
    """Writing to the client failed: it went away mid-stream."""


class _Sending:
    """The ``send`` a session gets: awaited, or ``now`` when no wait is needed.

    A :class:`vsmux.mux.api.SendNow`. ``now(bodies)`` writes synchronously
    when nothing is queued or being written and the connection takes the
    batch without waiting; True when the batch is the client's (or the
    write failed and the session is cancelled), False when it must be
    awaited instead.
    """

    __slots__ = ("_send", "now")

    def __init__(self, send: Write, now: WriteNow) -> None:
        self._send = send
        self.now = now

    def __call__(self, bodies: list[bytes], /) -> Awaitable[None]:
        return self._send(bodies)


def to_trio(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Wrap a Trio coroutine function so an asyncio coroutine can await it.

    Cancelling the awaiting asyncio task cancels the Trio call; an exception
    raised in Trio is raised to the asyncio caller as is.
    """
    wrapped: Callable[..., Awaitable[T]] = trio_asyncio.trio_as_aio(fn)
    return wrapped


async def pump_responses(
    run: Callable[[Callable[[list[bytes]], Awaitable[None]]], Awaitable[None]],
    write: Write,
    *,
    write_now: WriteNow | None = None,
    stop: trio.Event | None = None,
    metrics: Metrics | None = None,
    queue_batches: int = BRIDGE_QUEUE_BATCHES,
) -> None:
    """Run ``run(send)`` in Trio while an asyncio ``write`` delivers its batches.

    ``write`` is an asyncio coroutine function taking a list of encoded
    response bodies; it returns once they are handed to the transport (so it
    waits on HTTP/2 flow control, which is where a slow client is felt).

    ``write_now``, if given, is tried first for a batch sent while nothing is
    queued or being written: a synchronous function that writes the batch
    and returns True, or returns False when it would have to wait (then the
    batch is queued for ``write`` as usual). It runs in the session's Trio
    task; an exception from it counts as a failed ``write``.

    Returns when ``run`` returned and everything it sent is written. Raises
    what ``run`` raised (after flushing), :class:`ClientGone` if ``write``
    failed, or ``VStreamError(UNAVAILABLE, "server shutting down")`` when
    ``stop`` is set first. Trio cancellation of the caller cancels everything
    immediately.
    """
    gauges = metrics.gateway if metrics is not None else None
    handoff: Handoff[list[bytes]] = Handoff(queue_batches)
    failure: BaseException | None = None
    write_failure: BaseException | None = None
    stopped = False
    queued = 0  # batches in the handoff; mirrored into the gateway-wide gauge
    writing = False  # the asyncio writer is writing batches it took
    everything: trio.CancelScope | None = None  # the scope of the session and the writer

    def sent(bodies: list[bytes]) -> None:
        if gauges is not None:
            gauges[RESPONSES_SENT] += len(bodies)
            gauges[BYTES_SENT] += sum(len(body) for body in bodies)

    def send_now(bodies: list[bytes]) -> bool:
        # Nothing ahead of this batch: write it from here if that needs no
        # wait, rather than wake the asyncio writer through the asyncio
        # loop's queue, where it waits behind every other callback. A
        # failed write cancels the session (as a failed awaited write does)
        # and counts as done.
        nonlocal write_failure
        if write_now is None or queued or writing or write_failure is not None:
            return False
        try:
            written = write_now(bodies)
        except Exception as exc:  # the transport's errors, whatever they are
            write_failure = exc
            assert everything is not None
            everything.cancel()
            return True
        if written:
            sent(bodies)
        return written

    async def send(bodies: list[bytes]) -> None:
        nonlocal queued
        if not bodies:
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        if send_now(bodies):
            # No yield after an immediate write: the sender goes on to its
            # next item, or waits for one (a checkpoint) when none is
            # queued. A yield here cost a scheduler pass per write.
            if write_failure is not None:
                await trio.lowlevel.checkpoint()  # the write failed: the session is cancelled
            return
        # Counted before the put: the writer may take the batch before
        # `send` returns.
        queued += 1
        if gauges is not None:
            gauges[QUEUE_DEPTH] += 1
        try:
            await handoff.put_in_trio(bodies)
        except BaseException:
            queued -= 1
            if gauges is not None:
                gauges[QUEUE_DEPTH] -= 1
            raise

    async def write_queued() -> None:
        # asyncio, for the whole session: never awaits Trio.
        nonlocal write_failure, queued, writing
        while True:
            try:
                batches = await handoff.get_all_in_asyncio()
            except trio.EndOfChannel:
                return
            # No await from here to `write`: `send` sees the batches either
            # queued or being written, never neither.
            queued -= len(batches)
            writing = True
            if gauges is not None:
                gauges[QUEUE_DEPTH] -= len(batches)
            bodies = batches[0] if len(batches) == 1 else [b for batch in batches for b in batch]
            try:
                await write(bodies)
            except Exception as exc:  # the transport's errors, whatever they are
                # The Trio writer cancels the session when this returns; a send
                # waiting for room stays blocked until then.
                write_failure = exc
                return
            finally:
                writing = False
            sent(bodies)

    async def writer(cancel_all: trio.CancelScope) -> None:
        await trio_asyncio.aio_as_trio(write_queued)()
        if write_failure is not None:
            cancel_all.cancel()

    async def watch_stop(run_scope: trio.CancelScope, stop_event: trio.Event) -> None:
        nonlocal stopped
        await stop_event.wait()
        stopped = True
        run_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            everything = nursery.cancel_scope
            nursery.start_soon(writer, nursery.cancel_scope)
            # The session runs in the nursery body with its outcome kept aside,
            # so no exception group forms here: the writer and the stop watcher
            # never raise, and the body's error is re-raised once the writer
            # has flushed.
            async with trio.open_nursery() as run_nursery:
                if stop is not None:
                    run_nursery.start_soon(watch_stop, run_nursery.cancel_scope, stop)
                try:
                    await run(_Sending(send, send_now))
                except Exception as exc:
                    failure = exc
                finally:
                    handoff.close()
                    run_nursery.cancel_scope.cancel()
    finally:
        if gauges is not None:
            # Batches dropped by cancellation or a failed write leave the gauge too.
            gauges[QUEUE_DEPTH] -= queued
            gauges[SESSIONS_ENDED] += 1
    if write_failure is not None:
        raise ClientGone(f"writing to the client failed: {write_failure!r}") from write_failure
    if stopped:
        raise VStreamError(Code.UNAVAILABLE, SHUTTING_DOWN)
    if failure is not None:
        raise failure
