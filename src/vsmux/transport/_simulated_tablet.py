"""Serve simulated tablets over gRPC, as ``/queryservice.Query``.

:class:`SimulatedQueryService` answers ``VStream`` and ``StreamHealth`` for
one :class:`SimulatedTablet`, so a gateway (vsmux or vtgate) talks to it as to
a vttablet. It is given the tablet, or a function that finds the tablet at
each call (for an address that serves whichever tablet holds an alias now,
e.g. one a reshard has just created). It must be hosted with the
:class:`~vsmux.transport._codec.RawCodec`
(``open_grpc_server([service], host, port, codec=RawCodec())``): each tablet
response is encoded once from its frames and written as raw bytes.

Each call crosses from grpclib's asyncio handler into Trio once and runs the
tablet stream there; responses come back through
:func:`vsmux.transport._bridge.pump_responses` (whole responses, a small bounded
queue), so a slow client holds the simulated tablet back. Tablet errors
become gRPC statuses with the same code (vtrpc codes are gRPC codes) and the
tablet's message. A client that goes away cancels the Trio side at once.

:func:`serve_cluster_tablets` gives every tablet of a simulated cluster its
own server (``vsmux cluster``, ``vsmux fake-tablet`` and the tests use it).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import replace
from typing import Any

import grpclib.const
from grpclib.exceptions import GRPCError

from vsmux.errors import VStreamError
from vsmux.proto import binlogdata, query, queryservice
from vsmux.sources import SimulatedCluster, SimulatedTablet
from vsmux.topology import Topology
from vsmux.transport._bridge import pump_responses, to_trio
from vsmux.transport._codec import RawCodec, RawMessage
from vsmux.transport._hosting import open_grpc_server
from vsmux.transport._status import grpc_error
from vsmux.transport._tls import ServerTls
from vsmux.wire.frames import Frame, encode_response

__all__ = ["SimulatedQueryService", "serve_cluster_tablets"]

VSTREAM = "/queryservice.Query/VStream"
STREAM_HEALTH = "/queryservice.Query/StreamHealth"

Send = Callable[[list[bytes]], Awaitable[None]]


class SimulatedQueryService(queryservice.QueryBase):  # type: ignore[misc]
    """``/queryservice.Query`` for one simulated tablet (host it with RawCodec)."""

    def __init__(self, tablet: SimulatedTablet | Callable[[], SimulatedTablet]) -> None:
        self._find = tablet if callable(tablet) else (lambda: tablet)

    def current_tablet(self) -> SimulatedTablet:
        """The tablet this call talks to; a lookup may raise VStreamError if it is gone."""
        return self._find()

    def tablet_batches(
        self, request: binlogdata.VStreamRequest
    ) -> AsyncGenerator[list[Frame], None]:
        """The tablet's stream for ``request`` (a subclass may observe requests here)."""
        return self.current_tablet().batches(request)

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {
            VSTREAM: grpclib.const.Handler(
                self._vstream,
                grpclib.const.Cardinality.UNARY_STREAM,
                binlogdata.VStreamRequest,
                RawMessage,
            ),
            STREAM_HEALTH: grpclib.const.Handler(
                self._stream_health,
                grpclib.const.Cardinality.UNARY_STREAM,
                query.StreamHealthRequest,
                RawMessage,
            ),
        }

    async def _vstream(self, stream: Any) -> None:
        request: binlogdata.VStreamRequest | None = await stream.recv_message()
        if request is None:
            raise GRPCError(grpclib.const.Status.INVALID_ARGUMENT, "no VStreamRequest sent")

        async def run(send: Send) -> None:
            async with aclosing(self.tablet_batches(request)) as batches:
                async for batch in batches:
                    await send([encode_response(batch)])

        await self._serve(stream, run)

    async def _stream_health(self, stream: Any) -> None:
        await stream.recv_message()

        async def run(send: Send) -> None:
            async with aclosing(self.current_tablet().health.reports()) as reports:
                async for report in reports:
                    await send([bytes(report)])

        await self._serve(stream, run)

    @staticmethod
    async def _serve(stream: Any, run: Callable[[Send], Awaitable[None]]) -> None:
        async def write(bodies: list[bytes]) -> None:
            for body in bodies:
                await stream.send_message(body)

        try:
            await to_trio(pump_responses)(run, write)
        except VStreamError as exc:
            raise grpc_error(exc) from None


@asynccontextmanager
async def serve_cluster_tablets(
    cluster: SimulatedCluster, host: str, base_port: int = 0, *, tls: ServerTls | None = None
) -> AsyncIterator[Topology]:
    """Serve every tablet of ``cluster``; yield the topology with their addresses.

    Tablet ``i`` listens on ``base_port + i``, or on a port the OS picks when
    ``base_port`` is 0. With ``tls`` every tablet speaks TLS only (mutual if
    it has a CA). Must run inside :func:`~vsmux.transport.asyncio_loop`.
    Leaving the block, normally or by cancellation, closes every server.
    """
    async with AsyncExitStack() as stack:
        addressed = []
        for index, tablet in enumerate(cluster.tablets()):
            port = base_port + index if base_port else 0
            _, bound = await stack.enter_async_context(
                open_grpc_server(
                    [SimulatedQueryService(tablet)], host, port, codec=RawCodec(), tls=tls
                )
            )
            addressed.append(replace(tablet.info, address=f"{host}:{bound}"))
        live = cluster.topology
        yield Topology(
            cell=live.cell,
            keyspaces={k: replace(v, shards=list(v.shards)) for k, v in live.keyspaces.items()},
            tablets=addressed,
        )
