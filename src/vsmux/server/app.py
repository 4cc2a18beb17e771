"""The gateway server: VStream/Execute, health and reflection on one port.

:func:`open_gateway_server` is the one way to run the gateway (``vsmux serve``,
``vsmux demo`` and the tests use it). Leaving the block shuts down
gracefully: the listener closes, running sessions end with UNAVAILABLE
"server shutting down" (their status reaches the clients), and only then is
the server closed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from vsmux.mux.api import Gateway
from vsmux.server.auth import Security
from vsmux.server.execute import TableCatalog
from vsmux.server.gateway import RunVStream, VitessService
from vsmux.transport import SHUTDOWN_GRACE_SECONDS, GrpcEndpoint, ServerTls, open_grpc_endpoint

__all__ = ["GatewayServer", "open_gateway_server"]

log = logging.getLogger("vsmux.server")


@dataclass(frozen=True, slots=True)
class GatewayServer:
    """A running gateway: its service (for shutdown), its endpoint and where it listens."""

    service: VitessService
    server: GrpcEndpoint
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
    *,
    tls: ServerTls | None = None,
    security: Security | None = None,
    health_names: Sequence[str] = (),
) -> AsyncIterator[GatewayServer]:
    """Serve the gateway on ``host:port`` (0: the OS picks) while the block runs.

    With ``tls`` the port speaks TLS only, mutual TLS if it has a CA (the
    caller's certificate identity is on each ``Call``). ``security``
    authenticates VStream and Execute callers and holds the access file.
    ``health_names`` are extra health entries (``server.server.set_health``).

    Must run inside :func:`vsmux.transport.asyncio_loop`. On exit, normal or
    by cancellation, sessions are ended and drained within
    ``SHUTDOWN_GRACE_SECONDS`` (shielded), then the server closes.
    """
    service = VitessService(gateway, run_vstream, catalog, security)
    async with open_grpc_endpoint(
        service.grpc_service(),
        host,
        port,
        # Health and reflection requests get the bound VStream and Execute have.
        max_request_bytes=gateway.settings.max_request_bytes,
        tls=tls,
        health_names=health_names,
    ) as endpoint:
        log.info("gateway listening on %s:%d%s", host, endpoint.port, _tls_note(tls))
        try:
            yield GatewayServer(service, endpoint, host, endpoint.port)
        finally:
            with trio.move_on_after(SHUTDOWN_GRACE_SECONDS) as scope:
                scope.shield = True
                endpoint.stop_accepting()
                service.begin_shutdown()
                await endpoint.wait_calls_done()
            log.info("gateway stopped")


def _tls_note(tls: ServerTls | None) -> str:
    if tls is None:
        return " (plaintext)"
    return " (mutual TLS: client certificates required)" if tls.mutual else " (TLS)"
