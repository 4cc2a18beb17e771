"""The gateway server: VStream/Execute, health and reflection on one port.

:func:`open_gateway_server` is the one way to run the gateway (``vsmux serve``,
``vsmux demo`` and the tests use it). Leaving the block shuts down
gracefully: the listener closes, running sessions end with UNAVAILABLE
"server shutting down" (their status reaches the clients), and only then is
the server closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
import trio_asyncio
from grpclib.health.check import ServiceStatus
from grpclib.server import Server

from vsmux.mux.api import Gateway
from vsmux.server.execute import TableCatalog
from vsmux.server.gateway import RunVStream, VitessService
from vsmux.server.hosting import SHUTDOWN_GRACE_SECONDS, open_grpc_server, stop_accepting
from vsmux.server.reflection import with_health_and_reflection
from vsmux.transport._codec import RawCodec

__all__ = ["GatewayServer", "open_gateway_server"]

log = logging.getLogger("vsmux.server")


@dataclass(frozen=True, slots=True)
class GatewayServer:
    """A running gateway: its service (for shutdown) and where it listens."""

    service: VitessService
    server: Server
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@asynccontextmanager
async def open_gateway_server(
    gateway: Gateway,
    run_vstream: RunVStream,
    catalog: TableCatalog,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[GatewayServer]:
    """Serve the gateway on ``host:port`` (0: the OS picks) while the block runs.

    Must run inside ``trio_asyncio.open_loop()``. On exit, normal or by
    cancellation, sessions are ended and drained within
    ``SHUTDOWN_GRACE_SECONDS`` (shielded), then the server closes.
    """
    service = VitessService(gateway, run_vstream, catalog)
    status = ServiceStatus()
    services = with_health_and_reflection([service], status)
    async with open_grpc_server(
        services,
        host,
        port,
        codec=RawCodec(),
        # Health and reflection requests get the bound VStream and Execute have.
        max_request_bytes=gateway.settings.max_request_bytes,
    ) as (server, bound):
        status.set(True)
        log.info("gateway listening on %s:%d", host, bound)
        try:
            yield GatewayServer(service, server, host, bound)
        finally:
            with trio.move_on_after(SHUTDOWN_GRACE_SECONDS) as scope:
                scope.shield = True
                stop_accepting(server)
                status.set(False)
                service.begin_shutdown()
                await _drain_calls(server)
            log.info("gateway stopped")


async def _drain_calls(server: Server) -> None:
    """Wait until every running call has finished (its status sent)."""
    # grpclib keeps per-connection handlers and their call tasks private; this
    # is the only way to wait for calls without cancelling them first.
    tasks = [
        task
        for handler in list(getattr(server, "_handlers", ()))
        for task in list(getattr(handler, "_tasks", {}).values())
        if not task.done()
    ]
    if tasks:
        await trio_asyncio.aio_as_trio(_wait_all)(tasks)


async def _wait_all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.wait(tasks)
