"""A VStream call to a gateway, seen from Trio.

grpclib is asyncio-only; ``vsmux tail`` is a Trio program running one asyncio
loop through trio-asyncio (callers must be inside ``trio_asyncio.open_loop()``).
:func:`open_vstream` sends one ``vtgate.VStreamRequest`` and yields a
:class:`ResponseStream` whose ``receive`` crosses into asyncio once per
response (never per event) and returns the decoded ``vtgate.VStreamResponse``,
or ``None`` once the server ended the stream with OK.

Every failure is translated here, and only here, into a
:class:`vsmux.errors.VStreamError`: a gRPC status keeps its code and the
server's message; a refused, reset or dropped connection is UNAVAILABLE.

Cancellation: cancelling ``receive`` cancels the asyncio read; leaving the
``async with`` block (normally, by error or by cancellation) closes the
channel, which resets the call on the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, Protocol

import trio
import trio_asyncio
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from vsmux.errors import Code, VStreamError
from vsmux.proto import vtgate

__all__ = [
    "CLOSE_TIMEOUT_SECONDS",
    "Connector",
    "ResponseStream",
    "grpc_connector",
    "open_vstream",
    "parse_address",
]

VSTREAM_PATH = "/vtgateservice.Vitess/VStream"

# Closing a channel is local and quick; the bound only matters if the asyncio
# loop is wedged, and then we would rather leak a socket than hang on exit.
CLOSE_TIMEOUT_SECONDS = 5.0


class ResponseStream(Protocol):
    """The responses of one VStream call."""

    async def receive(self) -> vtgate.VStreamResponse | None:
        """The next response; ``None`` when the server ended the stream with OK.

        Raises :class:`VStreamError` for an error status or a lost connection.
        """
        ...


# Opens a call for a request; what ``vsmux tail`` needs from a transport.
class Connector(Protocol):
    def __call__(
        self, request: vtgate.VStreamRequest
    ) -> AbstractAsyncContextManager[ResponseStream]: ...


def parse_address(address: str) -> tuple[str, int]:
    """``(host, port)`` from ``host:port`` (``[v6]:port`` too)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise VStreamError(
            Code.INVALID_ARGUMENT, f"server address {address!r} must look like host:port"
        )
    return host.strip("[]"), int(port)


@contextmanager
def _translated(address: str) -> Iterator[None]:
    try:
        yield
    except GRPCError as exc:
        code = Code(exc.status.value)
        message = exc.message or exc.status.name
        raise VStreamError(code, message) from None
    except (StreamTerminatedError, ProtocolError, OSError, asyncio.IncompleteReadError) as exc:
        raise VStreamError(
            Code.UNAVAILABLE,
            f"connection to {address} failed or dropped: {exc or type(exc).__name__}",
        ) from None


class _Call:
    """The asyncio half: every method runs on the asyncio loop."""

    def __init__(self, host: str, port: int, metadata: Mapping[str, str] | None) -> None:
        self._host = host
        self._port = port
        self._metadata = dict(metadata or {})
        self._channel: Channel | None = None
        self._stream: Any = None

    async def start(self, request: vtgate.VStreamRequest) -> None:
        self._channel = Channel(self._host, self._port)
        self._stream = self._channel.request(
            VSTREAM_PATH,
            Cardinality.UNARY_STREAM,
            vtgate.VStreamRequest,
            vtgate.VStreamResponse,
            metadata=self._metadata or None,
        )
        await self._stream.__aenter__()
        await self._stream.send_message(request, end=True)

    async def receive(self) -> vtgate.VStreamResponse | None:
        message: vtgate.VStreamResponse | None = await self._stream.recv_message()
        if message is None:
            # Raises GRPCError unless the server ended with OK.
            await self._stream.recv_trailing_metadata()
        return message

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


class _TrioStream:
    def __init__(self, call: _Call, address: str) -> None:
        self._call = call
        self._address = address
        self._receive = trio_asyncio.aio_as_trio(call.receive)

    async def receive(self) -> vtgate.VStreamResponse | None:
        with _translated(self._address):
            response: vtgate.VStreamResponse | None = await self._receive()
            return response


@asynccontextmanager
async def open_vstream(
    address: str,
    request: vtgate.VStreamRequest,
    metadata: Mapping[str, str] | None = None,
) -> AsyncIterator[ResponseStream]:
    """Start a VStream call to ``address`` (``host:port``) and yield its responses.

    ``metadata`` is sent as gRPC metadata (e.g. ``username``/``password`` for
    a gateway with static auth). Raises :class:`VStreamError` if the call
    cannot be started.
    """
    host, port = parse_address(address)
    call = _Call(host, port, metadata)
    try:
        with _translated(address):
            await trio_asyncio.aio_as_trio(call.start)(request)
        yield _TrioStream(call, address)
    finally:
        with trio.move_on_after(CLOSE_TIMEOUT_SECONDS) as scope:
            scope.shield = True
            await trio_asyncio.aio_as_trio(call.close)()


def grpc_connector(address: str, metadata: Mapping[str, str] | None = None) -> Connector:
    """A :class:`Connector` that opens real gRPC calls to ``address``."""

    def connect(request: vtgate.VStreamRequest) -> AbstractAsyncContextManager[ResponseStream]:
        return open_vstream(address, request, metadata)

    return connect
