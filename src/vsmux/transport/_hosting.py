"""Hosting grpclib servers from Trio.

grpclib is asyncio-only. vsmux runs one asyncio loop inside Trio with
trio-asyncio, so the whole program is a Trio program: ``open_grpc_server``
must be entered inside :func:`~vsmux.transport.asyncio_loop`. Handlers run as
asyncio coroutines; they enter Trio once per call with
``trio_asyncio.trio_as_aio`` and pass data between the loops through a
:class:`~vsmux.transport._handoff.Handoff`, never with a crossing per message
(see :mod:`vsmux.transport._bridge`).

With ``max_request_bytes``, every request message of every method is bounded
in one place: a handler's ``stream.recv_message`` reads the message through
:func:`vsmux.transport._request.read_request`, which refuses one over the limit
from its gRPC frame header, before the body is read. Handlers that read
their requests with ``read_request`` themselves (the gateway's) are not
affected; the others (health, reflection) would otherwise buffer any size.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_asyncio
from google.protobuf.message import DecodeError
from grpclib import GRPCError
from grpclib.const import Handler, Status
from grpclib.server import Server

from vsmux.errors import VStreamError
from vsmux.transport._request import read_request
from vsmux.transport._status import grpc_error
from vsmux.transport._tls import ServerTls

__all__ = [
    "LISTEN_BACKLOG",
    "SHUTDOWN_GRACE_SECONDS",
    "open_grpc_server",
    "stop_accepting",
]

log = logging.getLogger("vsmux.server")

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
    max_request_bytes: int | None = None,
    tls: ServerTls | None = None,
) -> AsyncIterator[tuple[Server, int]]:
    """Serve ``services`` on ``host:port`` while the block runs.

    Yields the server and the bound port (useful with ``port=0``). ``codec``
    is a grpclib codec for every handler (e.g. ``vsmux.transport._codec.RawCodec``
    for handlers that send pre-encoded bytes); None means protobuf.
    ``max_request_bytes`` bounds every request message (see the module doc);
    None leaves them as grpclib reads them. With ``tls`` the port speaks
    only TLS (mutual TLS if it has a CA), with the certificates it holds at
    each handshake (:meth:`ServerTls.reload`). On exit, normal or by
    cancellation, the listener is closed and open calls get up to
    ``SHUTDOWN_GRACE_SECONDS`` to finish, in a shielded scope.
    """
    if max_request_bytes is not None:
        services = [_BoundedRequests(service, max_request_bytes) for service in services]
    server = Server(list(services), codec=codec)
    await trio_asyncio.aio_as_trio(server.start)(
        host, port, backlog=LISTEN_BACKLOG, ssl=tls.context if tls is not None else None
    )
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


class _BoundedRequests:
    """``service`` with every request message read through ``read_request``."""

    def __init__(self, service: Any, limit: int) -> None:
        self._service = service
        self._limit = limit

    def __mapping__(self) -> dict[str, Handler]:
        mapping: dict[str, Handler] = self._service.__mapping__()
        return {
            name: handler._replace(func=_bounded_handler(name, handler.func, self._limit))
            for name, handler in mapping.items()
        }


def _bounded_handler(
    method: str, func: Callable[[Any], Awaitable[None]], limit: int
) -> Callable[[Any], Awaitable[None]]:
    async def handle(stream: Any) -> None:
        # grpclib builds the stream just before calling the handler, and
        # ``async for`` over it calls ``recv_message`` too, so replacing it on
        # this one stream bounds every read the handler makes.
        stream.recv_message = functools.partial(_recv_bounded, stream, method, limit)
        await func(stream)

    return handle


async def _recv_bounded(stream: Any, method: str, limit: int) -> Any:
    """grpclib's ``Stream.recv_message``, refusing a message over ``limit`` bytes unread.

    Raises GRPCError: RESOURCE_EXHAUSTED naming the limit for a message over
    it, INVALID_ARGUMENT for one that is cut short or is not the method's
    message type, UNIMPLEMENTED for a compressed one. Cancelled (the client
    went away, the server is closing), it stops reading and nothing is kept.
    """
    try:
        data = await read_request(stream, limit)
    except VStreamError as exc:
        log.info("request refused method=%s %s: %s", method, exc.code.name, exc.message)
        raise grpc_error(exc) from None
    if data is None:
        return None
    try:
        message = stream._codec.decode(data, stream._recv_type)
    except DecodeError:
        log.info("request refused method=%s INVALID_ARGUMENT: malformed message", method)
        raise GRPCError(
            Status.INVALID_ARGUMENT, f"malformed {method} request: not a valid protobuf message"
        ) from None
    # The rest of grpclib's own recv_message (0.4.9): request event listeners,
    # and the counters its keepalive and channelz read.
    (message,) = await stream._dispatch.recv_message(message)
    stream._messages_received += 1
    connection = stream._stream.connection
    connection.messages_received += 1
    connection.last_message_received = time.monotonic()
    return message
