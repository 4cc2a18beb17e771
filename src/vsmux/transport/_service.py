"""Trio handlers behind grpclib methods: one adapter for every call's edge.

A :class:`TrioService` serves a gRPC service whose methods are Trio
functions taking a :class:`Call`. For each call, on grpclib's asyncio side:

1. the request message is read as raw bytes (refused over
   ``max_request_bytes`` from its gRPC frame header, before the body is read:
   :mod:`vsmux.transport._request`), within ``read_timeout`` seconds of the
   call's start: a client that opens calls and never sends would otherwise
   hold a task and its buffers for as long as the connection lives;
2. the call enters Trio once and runs the method's handler there, the
   request (or why there is none) in ``call.request()``;
3. the handler's outcome becomes the call's end:

   - it returns: a unary method's handler returns its response message,
     which is sent; a streaming one has written its responses with
     :meth:`Call.stream_responses`, and the call ends with OK;
   - :class:`VStreamError` -> its gRPC status and message
     (:func:`~vsmux.transport.grpc_error`, the one table);
   - :class:`~vsmux.transport.ClientGone` (writing to the client failed) ->
     nothing more is sent;
   - anything else is a bug: logged with its traceback, the client gets
     INTERNAL with :data:`INTERNAL_MESSAGE`, and the server carries on.

Cancellation: grpclib cancels a call's asyncio task when its client goes away
(or its deadline passes) and when the server closes; that cancels the Trio
handler at once (it sees ``trio.Cancelled``) and nothing more is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import trio
from grpclib import GRPCError
from grpclib.const import Cardinality, Handler, Status

from vsmux.core.metrics import Metrics
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import SendResponses
from vsmux.transport._batched_send import DirectWriter, send_batch
from vsmux.transport._bridge import ClientGone, pump_responses, to_trio
from vsmux.transport._codec import RawMessage
from vsmux.transport._request import read_request
from vsmux.transport._status import grpc_error
from vsmux.transport._tls import peer_identity

__all__ = ["INTERNAL_MESSAGE", "Call", "Method", "TrioService"]

# The gateway's log: its lines keep the logger they always had.
log = logging.getLogger("vsmux.server")

#: What a client is told when a handler fails with anything but a VStreamError.
INTERNAL_MESSAGE = "internal error in vsmux; the gateway log has the details"


class Call:
    """One gRPC call as its Trio handler sees it.

    ``peer`` is the client's ``host:port`` ("?" when unknown); ``connection``
    stands for the HTTP/2 connection the call came on (compare it, hash it,
    nothing else). ``peer_subject`` and ``peer_common_name`` are the client
    certificate's subject (RFC 4514: ``CN=app,O=Example``) and common name
    on a mutual-TLS connection, verified by the handshake; None otherwise.
    ``metadata`` is the request's gRPC metadata, read-only:
    lowercase keys to the first value sent under each (binary ``-bin`` keys
    are left out, as are gRPC's own headers). ``responses`` and ``bytes`` count what
    :meth:`stream_responses` has written to the client so far: responses and
    bytes only, since counting events would mean walking every response body
    again after it was packed.
    """

    __slots__ = (
        "_failure",
        "_request",
        "_stream",
        "bytes",
        "connection",
        "metadata",
        "peer",
        "peer_common_name",
        "peer_subject",
        "responses",
    )

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.peer = _peer_of(stream)
        self.peer_subject, self.peer_common_name = peer_identity(stream)
        self.metadata: Mapping[str, str] = _metadata_of(stream)
        self.connection: object = stream._stream.connection
        self.responses = 0
        self.bytes = 0
        self._request: bytes | None = None
        self._failure: VStreamError | None = None

    def request(self) -> bytes:
        """The request message's bytes.

        Raises the VStreamError that reading it ended with instead: over the
        size limit, compressed, cut short, none sent, or none within the read
        timeout.
        """
        if self._failure is not None:
            raise self._failure
        assert self._request is not None
        return self._request

    def _count(self, bodies: list[bytes]) -> None:
        self.responses += len(bodies)
        self.bytes += sum(map(len, bodies))

    async def stream_responses(
        self,
        run: Callable[[SendResponses], Awaitable[None]],
        *,
        stop: trio.Event | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Run ``run(send)`` and write every batch it sends to the client, in order.

        ``send(bodies)`` takes a list of encoded response messages; it waits
        while the bridge to the connection is full, so a slow client holds
        ``run`` back (see :mod:`vsmux.transport._bridge`). Returns once
        ``run`` returned and the last batch is written. Raises what ``run``
        raised (after writing what it sent first),
        :class:`~vsmux.transport.ClientGone` if writing failed, or
        ``VStreamError(UNAVAILABLE, "server shutting down")`` once ``stop``
        is set. Cancelled, it stops at once and writes nothing more.
        """
        stream = self._stream

        async def write(bodies: list[bytes]) -> None:
            # asyncio side of the bridge: every batch queued since the last
            # call, written to the connection in one go.
            await send_batch(stream, bodies)
            self._count(bodies)

        direct = DirectWriter(stream)

        def write_now(bodies: list[bytes]) -> bool:
            # The same from the session's Trio task, when it needs no wait.
            if not direct.write(bodies):
                return False
            self._count(bodies)
            return True

        await pump_responses(run, write, write_now=write_now, stop=stop, metrics=metrics)


@dataclass(frozen=True, slots=True)
class Method:
    """One method of a :class:`TrioService`.

    ``name`` is the method's name in its path (``VStream``), also used in
    the messages of a refused request. ``handler(call)`` is a Trio function.
    With a ``response_type`` the method is unary: the handler returns one
    message of that type. Without, responses are streamed as raw bytes
    through :meth:`Call.stream_responses` and the handler returns None.
    """

    name: str
    handler: Callable[[Call], Awaitable[Any]]
    response_type: type[Any] | None = None


class TrioService:
    """The gRPC service ``name`` (``package.Service``) with Trio ``methods``.

    Every request is read as raw bytes, at most ``max_request_bytes`` of
    them, and must arrive within ``read_timeout`` seconds of the call's start.
    Host it with :func:`~vsmux.transport.open_grpc_endpoint` (or with the
    :class:`~vsmux.transport._codec.RawCodec` on any grpclib server).
    """

    def __init__(
        self,
        name: str,
        methods: Sequence[Method],
        *,
        max_request_bytes: int,
        read_timeout: float,
    ) -> None:
        self.name = name
        self._methods = list(methods)
        self._limit = max_request_bytes
        self._read_timeout = read_timeout

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"/{self.name}/{method.name}": Handler(
                _handler(method, self._limit, self._read_timeout),
                Cardinality.UNARY_STREAM
                if method.response_type is None
                else Cardinality.UNARY_UNARY,
                RawMessage,  # read by vsmux.transport._request, decoded by the handler
                RawMessage if method.response_type is None else method.response_type,
            )
            for method in self._methods
        }


def _handler(method: Method, limit: int, read_timeout: float) -> Callable[[Any], Awaitable[None]]:
    name = method.name
    in_trio = to_trio(method.handler)

    async def handle(stream: Any) -> None:
        """grpclib handler (asyncio). Cancelled by grpclib when the client goes away."""
        call = Call(stream)
        try:
            async with asyncio.timeout(read_timeout):
                data = await read_request(stream, limit)
        except TimeoutError:
            call._failure = VStreamError(
                Code.INVALID_ARGUMENT,
                f"no complete {name} request within {read_timeout:g}s "
                "of the call's start; send the request message with the call",
            )
        except VStreamError as exc:
            call._failure = exc
        else:
            if data is None:
                call._failure = VStreamError(Code.INVALID_ARGUMENT, f"empty {name} request")
            call._request = data
        try:
            response = await in_trio(call)
        except VStreamError as exc:
            raise grpc_error(exc) from None
        except ClientGone:
            return
        except Exception:
            log.exception("%s call failed unexpectedly", name)
            raise GRPCError(Status.INTERNAL, INTERNAL_MESSAGE) from None
        if method.response_type is not None:
            await stream.send_message(response)

    return handle


def _metadata_of(stream: Any) -> Mapping[str, str]:
    received: dict[str, str] = {}
    for key, value in (stream.metadata or {}).items():
        if isinstance(value, str) and not key.endswith("-bin"):
            received.setdefault(key.lower(), value)
    return MappingProxyType(received)


def _peer_of(stream: Any) -> str:
    try:
        addr = stream.peer.addr()
    except Exception:  # peer info is best effort; a log line must not fail a call
        return "?"
    if not addr:
        return "?"
    return f"{addr[0]}:{addr[1]}"
