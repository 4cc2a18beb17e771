"""A :class:`TrioService` on one port, with health and reflection beside it.

:func:`open_grpc_endpoint` assembles the grpclib server the gateway runs:
the service's methods (raw bytes in and out, see
:class:`~vsmux.transport._codec.RawCodec`), the standard health service
reporting SERVING, and reflection for both (:mod:`vsmux.transport._health`),
with every request message bounded by the same ``max_request_bytes``.

The :class:`GrpcEndpoint` it yields is what graceful shutdown needs:
:meth:`~GrpcEndpoint.stop_accepting` closes the listener and turns health to
NOT_SERVING, and :meth:`~GrpcEndpoint.wait_calls_done` waits for the calls
still running to send their statuses, without cancelling them.

:func:`drop_finished_calls` makes grpclib let go of finished calls, which it
otherwise keeps for a while (the gateway's memory release calls it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio_asyncio
from grpclib.health.check import ServiceStatus
from grpclib.server import Server

from vsmux.transport._codec import RawCodec
from vsmux.transport._health import with_health_and_reflection
from vsmux.transport._hosting import open_grpc_server, stop_accepting
from vsmux.transport._service import TrioService
from vsmux.transport._tls import ServerTls

__all__ = ["GrpcEndpoint", "drop_finished_calls", "open_grpc_endpoint"]


class GrpcEndpoint:
    """A running :func:`open_grpc_endpoint`: its port and its shutdown steps."""

    def __init__(
        self,
        server: Server,
        status: ServiceStatus,
        port: int,
        named: dict[str, ServiceStatus] | None = None,
    ) -> None:
        self._server = server
        self._status = status
        self._named = named or {}
        #: The port it listens on (the one the OS chose for port 0).
        self.port = port

    def set_health(self, name: str, serving: bool) -> None:
        """Report the health entry ``name`` (one of ``health_names``) SERVING or not."""
        self._named[name].set(serving)

    def stop_accepting(self) -> None:
        """Close the listener and report NOT_SERVING; running calls carry on."""
        stop_accepting(self._server)
        self._status.set(False)

    async def wait_calls_done(self) -> None:
        """Wait until every running call has finished (its status sent).

        Cancelled, it stops waiting; the calls carry on.
        """
        # grpclib keeps per-connection handlers and their call tasks private; this
        # is the only way to wait for calls without cancelling them first.
        tasks = [
            task
            for handler in list(getattr(self._server, "_handlers", ()))
            for task in list(getattr(handler, "_tasks", {}).values())
            if not task.done()
        ]
        if tasks:
            await trio_asyncio.aio_as_trio(_wait_all)(tasks)


async def _wait_all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.wait(tasks)


@asynccontextmanager
async def open_grpc_endpoint(
    service: TrioService,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_request_bytes: int,
    tls: ServerTls | None = None,
    health_names: Sequence[str] = (),
) -> AsyncIterator[GrpcEndpoint]:
    """Serve ``service``, health and reflection on ``host:port`` (0: the OS picks).

    ``health_names`` are extra health entries, SERVING until
    :meth:`GrpcEndpoint.set_health` says otherwise.

    Must run inside :func:`~vsmux.transport.asyncio_loop`. Health requests
    and reflection requests are bounded by ``max_request_bytes`` too. On exit,
    normal or by cancellation, the server closes as
    :func:`~vsmux.transport.open_grpc_server` does: calls still running get
    a shielded grace period, then are cancelled.
    """
    status = ServiceStatus()
    named = {name: ServiceStatus() for name in health_names}
    services = with_health_and_reflection([service], status, named)
    async with open_grpc_server(
        services, host, port, codec=RawCodec(), max_request_bytes=max_request_bytes, tls=tls
    ) as (server, bound):
        status.set(True)
        for named_status in named.values():
            named_status.set(True)
        yield GrpcEndpoint(server, status, bound, named)


def drop_finished_calls(server: GrpcEndpoint | Any) -> int:
    """Make grpclib forget finished calls and closed connections now; handlers dropped.

    ``server`` is a :class:`GrpcEndpoint` or a grpclib server; anything else
    drops nothing. grpclib keeps each connection's handler, and each handler
    its call tasks, until ten more connections (or calls on that connection)
    arrive; only then does it drop the finished ones (``__gc_collect__``). A
    finished call's task holds the exception it ended with, whose traceback
    holds the call's frames and whatever they held. An idle server gets no
    tenth connection.
    """
    if isinstance(server, GrpcEndpoint):
        server = server._server
    handlers = getattr(server, "_handlers", None)
    collect = getattr(server, "__gc_collect__", None)
    if handlers is None or collect is None:
        return 0  # another grpclib: it keeps what it keeps
    before = len(handlers)
    for handler in list(handlers):
        handler_collect = getattr(handler, "__gc_collect__", None)
        if handler_collect is not None:
            handler_collect()
    collect()
    return before - len(server._handlers)
