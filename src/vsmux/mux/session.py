"""One VStream request: a nursery, a streamer per shard, one sender.

:func:`run_vstream` resolves the request, builds the request's shared state
(:class:`~vsmux.mux.context.RequestContext`), and runs in one nursery:

- the :class:`~vsmux.mux.sender.Sender`, reading the request's channel;
- one :class:`~vsmux.mux.streamer.ShardStreamer` per shard, each with a clone
  of the channel's send end (journal convergence adds more);
- the liveness watch.

First error wins: every task runs under :meth:`_Session.guard`, which records
the first :class:`VStreamError`, cancels the nursery, and that error is what
``run_vstream`` raises. The sender returning (``stop_on_reshard``, or every
streamer gone) ends the request cleanly. Exception groups are unwrapped here
and nowhere else: anything that is not a VStreamError is a bug and becomes
INTERNAL. Cancellation from outside (client gone) cancels the nursery; every
task and tablet stream is closed before ``run_vstream`` returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from vsmux.core.journal import JournalTracker
from vsmux.core.picking import type_name
from vsmux.core.positions import PositionBook
from vsmux.core.resolve import ResolvedRequest, resolve_request
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import Gateway, SendResponses
from vsmux.mux.context import RequestContext
from vsmux.mux.gate import SendGate
from vsmux.mux.items import Item
from vsmux.mux.journal_wait import Convergence
from vsmux.mux.liveness_wait import Liveness
from vsmux.mux.picking_wait import TabletPicker
from vsmux.mux.sender import Sender
from vsmux.mux.skew_wait import SkewGate
from vsmux.mux.streamer import ShardStreamer
from vsmux.proto import binlogdata, vtgate

__all__ = ["run_vstream"]


async def run_vstream(
    request: vtgate.VStreamRequest, gateway: Gateway, send: SendResponses, *, share: bool = True
) -> None:
    """Run one VStream request to its end (see :mod:`vsmux.mux.api` for the contract)."""
    resolved = resolve_request(request, gateway.topology, gateway.settings.cell)
    await _Session(resolved, gateway, send, share=share).run()


class _Session:
    def __init__(
        self, resolved: ResolvedRequest, gateway: Gateway, send: SendResponses, *, share: bool
    ) -> None:
        self._resolved = resolved
        self._gateway = gateway
        self._send = send
        self._share = share and gateway.feeds is not None
        self._error: VStreamError | None = None
        self._nursery: trio.Nursery | None = None
        self._ctx: RequestContext | None = None

    async def run(self) -> None:
        resolved = self._resolved
        gateway = self._gateway
        settings = gateway.settings
        flags = resolved.flags
        book = PositionBook(resolved.shard_gtids)
        # Shared sources when the request may share: its streams join feeds,
        # and its picks prefer the tablet the shard's other streams use.
        sources = gateway.sources
        affinity = None
        if self._share and gateway.feeds is not None:
            sources = gateway.feeds.directory
            affinity = gateway.feeds.affinity
        sender = Sender(
            book,
            self._send,
            gateway.metrics,
            max_response_bytes=settings.max_response_bytes,
            heartbeat_interval=float(flags.heartbeat_interval),
            rename_tables=not flags.exclude_keyspace_from_table_name,
        )
        ctx = RequestContext(
            resolved=resolved,
            settings=settings,
            metrics=gateway.metrics,
            sources=sources,
            picker=TabletPicker(
                gateway.topology,
                sources,
                settings,
                tablet_type=resolved.tablet_type,
                cells=resolved.cells,
                cell_preference=resolved.cell_preference,
                primary_hint=gateway.failover.primary,
                affinity=affinity,
            ),
            book=book,
            convergence=Convergence(JournalTracker(book.keys())),
            gate=SendGate(),
            skew=SkewGate(settings, gateway.metrics) if flags.minimize_skew else None,
            liveness=Liveness(settings.liveness_timeout),
            start_streamer=self._start_streamer,
            type_name=type_name(resolved.tablet_type),
            failover=gateway.failover,
            deliver_now=sender.deliver_now,
        )
        self._ctx = ctx
        # Bounded so a slow client pushes back on the streamers and so on the
        # tablets; each item is one batch's worth of whole units at most.
        send_channel, receive_channel = trio.open_memory_channel[Item](settings.unit_queue_size)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._run_sender, sender, receive_channel)
                nursery.start_soon(self.guard, ctx.liveness.watch)
                async with send_channel:
                    for shard_gtid in resolved.shard_gtids:
                        self._start_streamer(shard_gtid, send_channel.clone())
        except BaseExceptionGroup as group:
            bugs, _cancelled = group.split(Exception)
            if bugs is None:
                raise  # cancelled from outside: let the caller's scope take it
            if self._error is not None:
                raise self._error from group
            raise VStreamError(
                Code.INTERNAL, f"vstream failed unexpectedly: {_first(bugs)!r}"
            ) from group
        if self._error is not None:
            raise self._error

    def _start_streamer(
        self, shard_gtid: binlogdata.ShardGtid, channel: trio.MemorySendChannel[Item]
    ) -> None:
        assert self._nursery is not None and self._ctx is not None
        streamer = ShardStreamer(self._ctx, shard_gtid, channel)
        self._nursery.start_soon(self.guard, streamer.run, name=f"vstream {streamer.key}")

    async def _run_sender(self, sender: Sender, receive: trio.MemoryReceiveChannel[Item]) -> None:
        await self.guard(sender.run, receive)
        # The sender returns when the request is done (stop_on_reshard, or no
        # streamer is left): end everything else cleanly.
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def guard(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn``; its VStreamError, if first, becomes the request's error."""
        try:
            await fn(*args)
        except VStreamError as err:
            if self._error is None:
                self._error = err
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
