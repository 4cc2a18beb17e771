"""A VStream call to a gateway, seen from Trio.

grpclib is asyncio-only; ``vsmux tail`` and the demo's client are Trio
programs that run grpclib inside :func:`vsmux.transport.asyncio_loop`.
:func:`open_vstream` sends one ``vtgate.VStreamRequest`` and yields a
:class:`ResponseStream` whose ``receive`` returns the decoded
``vtgate.VStreamResponse`` messages one by one, then ``None`` once the server
ended the stream with OK.

How a call runs: one asyncio coroutine owns the grpclib call. It connects,
sends the request, and puts each response into a
:class:`~vsmux.transport._handoff.Handoff` holding at most
:data:`RESPONSES_AHEAD` (HTTP/2 flow control holds the rest at the server).
The Trio side takes everything queued in one wakeup and hands it out a
response per ``receive``: the loops are crossed once per batch, never per
response. The only ``aio_as_trio`` crossing is the one that starts the
coroutine.

Every failure becomes a :class:`vsmux.errors.VStreamError` through
:func:`vsmux.transport.error_of`: a gRPC status keeps its code and the
server's message as it is (a gateway's messages already say what failed); a
refused, reset or dropped connection is UNAVAILABLE.

Cancellation: a cancelled ``receive`` takes nothing from the queue (the next
``receive`` gets what arrived meanwhile). Leaving the ``async with`` block
(normally, by error or by cancellation) cancels the coroutine, which resets
the call on the server and closes the channel; that is synchronous on the
asyncio side, so leaving never waits on the network.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Cardinality
from grpclib.exceptions import StreamTerminatedError

from vsmux.errors import Code, VStreamError
from vsmux.proto import vtgate
from vsmux.topology import AddressError, split_address
from vsmux.transport._beside import call_beside
from vsmux.transport._handoff import Handoff
from vsmux.transport._status import error_of
from vsmux.transport._tls import ClientTls, handshake_failure

__all__ = [
    "RESPONSES_AHEAD",
    "Connector",
    "ResponseStream",
    "grpc_connector",
    "open_vstream",
]

VSTREAM_PATH = "/vtgateservice.Vitess/VStream"

#: Responses received ahead of the caller. The caller takes all that are
#: queued in one wakeup, so while it works on one batch the next responses
#: are decoded and waiting. A vsmux gateway's response carries up to about
#: 256 KiB of events (its sender's COALESCE_BYTES), so this holds ~1 MiB at
#: most beyond the HTTP/2 stream window; a slow caller stops the server there.
RESPONSES_AHEAD = 4
#: How long connecting and sending the request may take.
CONNECT_TIMEOUT_SECONDS = 10.0


class ResponseStream(Protocol):
    """The responses of one VStream call."""

    async def receive(self) -> vtgate.VStreamResponse | None:
        """The next response; ``None`` when the server ended the stream with OK.

        Raises :class:`VStreamError` for an error status or a lost connection.
        """
        ...


class Connector(Protocol):
    """Opens a call for a request: what ``vsmux tail`` needs from a transport."""

    def __call__(
        self, request: vtgate.VStreamRequest
    ) -> AbstractAsyncContextManager[ResponseStream]: ...


@dataclass(frozen=True, slots=True)
class _Started:
    """The request is on its way: the connection is up and the request written."""


@dataclass(frozen=True, slots=True)
class _End:
    """The call is over: normally (``failure`` None) or with this exception."""

    failure: BaseException | None


_Item = vtgate.VStreamResponse | _Started | _End

_STARTED = _Started()

# Said when a TLS connection without a client certificate is lost before any response.
_NO_CLIENT_CERTIFICATE = (
    "a gateway that requires client certificates (mutual TLS) closes connections that bring none"
)


def _error(exc: BaseException, address: str) -> VStreamError:
    """The VStreamError a failure of the call to ``address`` stands for.

    A TLS handshake that failed is UNAUTHENTICATED (not retried: a setting
    is wrong), with what went wrong.
    """
    reason = handshake_failure(exc)
    if reason is not None:
        return VStreamError(Code.UNAUTHENTICATED, f"TLS with {address} failed: {reason}")
    return error_of(exc, address, peer_kind="gateway")


async def _run_call(
    host: str,
    port: int,
    metadata: Mapping[str, str],
    request: vtgate.VStreamRequest,
    handoff: Handoff[_Item],
    tls: ClientTls | None,
) -> None:
    """asyncio: run the call, handing over the start, each response, then the end.

    Only ever awaits asyncio things (grpclib and the hand-off's futures), so
    cancelling this task always ends it.
    """
    failure: BaseException | None = None
    received = False
    if tls is None:
        channel = Channel(host, port)
    else:
        config = Configuration(ssl_target_name_override=tls.server_name)
        channel = Channel(host, port, ssl=tls.context, config=config)
    try:
        stream: Any = channel.request(
            VSTREAM_PATH,
            Cardinality.UNARY_STREAM,
            vtgate.VStreamRequest,
            vtgate.VStreamResponse,
            metadata=dict(metadata) or None,
        )
        async with stream:
            try:
                # Connecting happens here: bounded, so an address that never
                # answers fails the call instead of waiting on the OS.
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    await stream.send_message(request, end=True)
            except TimeoutError:
                raise TimeoutError(f"no answer within {CONNECT_TIMEOUT_SECONDS:g}s") from None
            await handoff.put_in_asyncio(_STARTED)
            while (response := await stream.recv_message()) is not None:
                received = True
                await handoff.put_in_asyncio(response)
            # Raises GRPCError unless the server ended with OK.
            await stream.recv_trailing_metadata()
    except trio.BrokenResourceError:
        return  # the Trio side left; it cancels this task too
    except StreamTerminatedError as exc:
        failure = exc
        if tls is not None and not tls.client_certificate and not received:
            # TLS 1.3 finishes the client's side of the handshake before the
            # server checks for a client certificate; a server that wanted one
            # just closes, and this is all the client sees of it.
            error = _error(exc, f"{host}:{port}")
            failure = VStreamError(error.code, f"{error.message}; {_NO_CLIENT_CERTIFICATE}")
    except Exception as exc:  # every transport and server failure ends the call
        failure = exc
    finally:
        channel.close()
    try:
        await handoff.put_in_asyncio(_End(failure))
    except trio.BrokenResourceError:
        pass


class _Responses:
    """The Trio side of one call: a :class:`ResponseStream` over the hand-off."""

    def __init__(self, handoff: Handoff[_Item], address: str) -> None:
        self._handoff = handoff
        self._address = address
        self._ready: deque[vtgate.VStreamResponse] = deque()
        self._end: _End | None = None

    async def started(self) -> None:
        """Wait until the request is sent; raises VStreamError if it could not be."""
        item = await self._handoff.get_in_trio()
        if isinstance(item, _End):
            self._end = item
            if item.failure is not None:
                raise _error(item.failure, self._address)

    async def receive(self) -> vtgate.VStreamResponse | None:
        if self._ready or self._end is not None:
            await trio.lowlevel.checkpoint()
        else:
            for item in await self._handoff.get_all_in_trio():
                if isinstance(item, _End):
                    self._end = item  # always the producer's last item
                elif not isinstance(item, _Started):
                    self._ready.append(item)
        if self._ready:
            return self._ready.popleft()
        assert self._end is not None  # a batch holds at least one item
        if self._end.failure is not None:
            raise _error(self._end.failure, self._address)
        return None


@asynccontextmanager
async def open_vstream(
    address: str,
    request: vtgate.VStreamRequest,
    metadata: Mapping[str, str] | None = None,
    *,
    tls: ClientTls | None = None,
) -> AsyncIterator[ResponseStream]:
    """Start a VStream call to ``address`` (``host:port``) and yield its responses.

    ``metadata`` is sent as gRPC metadata (e.g. ``username``/``password`` for
    a gateway with static auth). With ``tls`` the call goes over TLS
    (:class:`~vsmux.transport.ClientTls`: the CA, a client certificate, the
    server's name). Raises :class:`VStreamError` if the call
    cannot be started: INVALID_ARGUMENT for an address that is not
    ``host:port``, UNAVAILABLE for a server that cannot be reached. An error
    raised in the block comes out as it is.
    """
    try:
        host, port = split_address(address)
    except AddressError:
        raise VStreamError(
            Code.INVALID_ARGUMENT, f"server address {address!r} must look like host:port"
        ) from None
    handoff: Handoff[_Item] = Handoff(RESPONSES_AHEAD)
    responses = _Responses(handoff, address)
    async with call_beside(
        handoff, _run_call, host, port, dict(metadata or {}), request, handoff, tls
    ):
        await responses.started()
        yield responses


def grpc_connector(
    address: str, metadata: Mapping[str, str] | None = None, *, tls: ClientTls | None = None
) -> Connector:
    """A :class:`Connector` that opens real gRPC calls to ``address`` (over TLS with ``tls``)."""

    def connect(request: vtgate.VStreamRequest) -> AbstractAsyncContextManager[ResponseStream]:
        return open_vstream(address, request, metadata, tls=tls)

    return connect
