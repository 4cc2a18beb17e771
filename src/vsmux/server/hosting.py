"""Hosting grpclib servers from Trio.

grpclib is asyncio-only. vsmux runs one asyncio loop inside Trio with
trio-asyncio, so the whole program is a Trio program: ``open_grpc_server``
must be entered inside ``trio_asyncio.open_loop()``. Handlers run as asyncio
coroutines; they enter Trio once per call with ``trio_asyncio.trio_as_aio``
and pass data between the loops through a
:class:`~vsmux.sources.handoff.Handoff`, never with a crossing per message
(see ``vsmux.server.bridge``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_asyncio
from grpclib.server import Server

__all__ = ["LISTEN_BACKLOG", "SHUTDOWN_GRACE_SECONDS", "open_grpc_server", "stop_accepting"]

# How long closing a server may wait for in-flight calls to finish before they
# are abandoned. Sessions are cancelled first, so this is normally instant.
SHUTDOWN_GRACE_SECONDS = 5.0

# Connections the kernel queues for the listener before refusing more (capped
# by net.core.somaxconn). asyncio also accepts up to this many per loop
# iteration. grpclib's 100 refused a burst of 200 clients ("failed to
# connect") while the gateway was busy; a thousand covers such bursts.
LISTEN_BACKLOG = 1024


@asynccontextmanager
async def open_grpc_server(
    services: Sequence[Any],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    codec: Any = None,
) -> AsyncIterator[tuple[Server, int]]:
    """Serve ``services`` on ``host:port`` while the block runs.

    Yields the server and the bound port (useful with ``port=0``). ``codec``
    is a grpclib codec for every handler (e.g. ``vsmux.sources.rawcodec.RawCodec``
    for handlers that send pre-encoded bytes); None means protobuf. On exit,
    normal or by cancellation, the listener is closed and open calls get up
    to ``SHUTDOWN_GRACE_SECONDS`` to finish, in a shielded scope.
    """
    server = Server(list(services), codec=codec)
    await trio_asyncio.aio_as_trio(server.start)(host, port, backlog=LISTEN_BACKLOG)
    try:
        # grpclib keeps the asyncio server private; it is the only way to learn
        # the port the OS chose for port=0.
        listener: Any = server._server
        sockets = listener.sockets if listener is not None else ()
        bound = int(sockets[0].getsockname()[1]) if sockets else port
        yield server, bound
    finally:
        with trio.move_on_after(SHUTDOWN_GRACE_SECONDS) as scope:
            scope.shield = True
            server.close()
            await trio_asyncio.aio_as_trio(server.wait_closed)()


def stop_accepting(server: Server) -> None:
    """Close the listening socket; calls already running carry on.

    Used by graceful shutdown before sessions are told to end, so no new call
    slips in between. ``server.close()`` later cancels whatever is left.
    """
    listener: Any = server._server
    if listener is not None:
        listener.close()
