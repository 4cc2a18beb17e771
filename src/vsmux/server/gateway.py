"""The ``vtgateservice.Vitess`` endpoint: VStream and metadata Execute.

Handlers are grpclib (asyncio) coroutines registered with raw grpclib
``Handler``s, so VStream responses leave as the pre-encoded bytes the
session produced (see :mod:`vsmux.transport._codec`), each batch of them in
one write (:mod:`vsmux.server.batched_send`). Each VStream call enters
Trio once and runs the session through :func:`vsmux.server.bridge.pump_responses`.

Requests arrive as raw bytes and go through :mod:`vsmux.server.intake`
(size limit from the frame header, protobuf's own parser, field-naming errors
for malformed input) and, for VStream, :mod:`vsmux.core.limits`, before any
other work. A refused request costs one INFO log line with the peer.

Error edge (the only place a session's outcome becomes a gRPC status):

- :class:`VStreamError` -> the status with the same number as its vtrpc code
  and its message, cut to a size clients accept in a trailer;
- the client going away or its deadline -> the session is cancelled, nothing
  more is sent;
- anything else is a bug: logged with its traceback, the client gets INTERNAL
  with a short message, and the server carries on.

Shutdown: :meth:`VitessService.begin_shutdown` ends every running session with
UNAVAILABLE "server shutting down" and refuses new ones the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
from grpclib import GRPCError
from grpclib.const import Cardinality, Handler, Status

from vsmux.core.admission import Admission
from vsmux.core.limits import check_vstream_request
from vsmux.core.quoting import cap_message, printable, quote
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import Gateway, SendResponses
from vsmux.proto import vtgate
from vsmux.server.batched_send import send_batch, send_batch_nowait
from vsmux.server.bridge import SHUTTING_DOWN, ClientGone, pump_responses, to_trio
from vsmux.server.execute import TableCatalog, answer_execute
from vsmux.server.intake import decode_request, read_request
from vsmux.server.status import grpc_status, summarize_request
from vsmux.transport._codec import RawMessage

__all__ = ["ACTIVE_SESSIONS", "RunVStream", "VitessService"]

log = logging.getLogger("vsmux.server")

RunVStream = Callable[[vtgate.VStreamRequest, Gateway, SendResponses], Awaitable[None]]
R = TypeVar("R", vtgate.VStreamRequest, vtgate.ExecuteRequest)

# Gateway-wide gauge in Metrics.gateway.
ACTIVE_SESSIONS = "active_sessions"

# How long a call may take to deliver its request message. Clients send it
# with the call; one that opens calls and never sends would otherwise hold a
# task and its buffers for as long as the connection lives.
REQUEST_READ_TIMEOUT_SECONDS = 10.0

_INTERNAL_MESSAGE = "internal error in vsmux; the gateway log has the details"


class _SessionTally:
    """What one session sent, for its end-of-session log line.

    Responses and bytes only: counting events would mean walking every
    response body again after the sender packed it. Events sent per shard
    are in the metrics (``VStreamsEventsStreamed``).
    """

    __slots__ = ("bytes", "responses")

    def __init__(self) -> None:
        self.responses = 0
        self.bytes = 0

    def add(self, bodies: list[bytes]) -> None:
        """Count a batch of response bodies written to the client."""
        self.responses += len(bodies)
        self.bytes += sum(map(len, bodies))


class VitessService:
    """Serves ``/vtgateservice.Vitess/VStream`` and ``/Execute`` for one gateway.

    ``run_vstream`` is the multiplexer entry point (``vsmux.mux.run_vstream``);
    ``catalog`` answers ``SHOW TABLES``.
    """

    def __init__(self, gateway: Gateway, run_vstream: RunVStream, catalog: TableCatalog) -> None:
        self.gateway = gateway
        self._run_vstream = run_vstream
        self._catalog = catalog
        self._stopping = trio.Event()
        self._next_session = 1
        settings = gateway.settings
        self._admission = Admission(
            settings.max_streams_per_connection, settings.max_streaming_connections
        )

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/vtgateservice.Vitess/VStream": Handler(
                self._vstream,
                Cardinality.UNARY_STREAM,
                RawMessage,  # decoded by vsmux.server.intake
                RawMessage,
            ),
            "/vtgateservice.Vitess/Execute": Handler(
                self._execute,
                Cardinality.UNARY_UNARY,
                RawMessage,  # decoded by vsmux.server.intake
                vtgate.ExecuteResponse,
            ),
        }

    def begin_shutdown(self) -> None:
        """End running sessions with UNAVAILABLE and refuse new ones. Call from Trio."""
        self._stopping.set()

    @property
    def shutting_down(self) -> bool:
        return self._stopping.is_set()

    # -- VStream ---------------------------------------------------------------

    async def _receive(self, stream: Any, message_type: type[R], method: str) -> R:
        """The request, read and decoded; a refused one is logged and raised as GRPCError."""
        settings = self.gateway.settings
        try:
            try:
                async with asyncio.timeout(REQUEST_READ_TIMEOUT_SECONDS):
                    data = await read_request(stream, settings.max_request_bytes)
            except TimeoutError:
                raise VStreamError(
                    Code.INVALID_ARGUMENT,
                    f"no complete {method} request within {REQUEST_READ_TIMEOUT_SECONDS:g}s "
                    "of the call's start; send the request message with the call",
                ) from None
            if data is None:
                raise VStreamError(Code.INVALID_ARGUMENT, f"empty {method} request")
            request = decode_request(data, message_type, settings.max_request_fields)
            if isinstance(request, vtgate.VStreamRequest):
                check_vstream_request(request, settings)
        except VStreamError as exc:
            log.info(
                "%s refused peer=%s %s: %s",
                method.lower(),
                _peer_of(stream),
                exc.code.name,
                printable(exc.message),
            )
            raise GRPCError(grpc_status(exc.code), cap_message(exc.message)) from None
        return request

    async def _vstream(self, stream: Any) -> None:
        """grpclib handler (asyncio). Cancelled by grpclib when the client goes away."""
        request = await self._receive(stream, vtgate.VStreamRequest, "VStream")
        # The HTTP/2 connection the call came on: admission counts calls per connection.
        connection = stream._stream.connection
        try:
            self._admission.admit(connection)
        except VStreamError as exc:
            log.info("vstream refused peer=%s %s", _peer_of(stream), exc.message)
            raise GRPCError(grpc_status(exc.code), exc.message) from None
        try:
            await self._stream_session(stream, request)
        finally:
            self._admission.release(connection)

    async def _stream_session(self, stream: Any, request: vtgate.VStreamRequest) -> None:
        """One admitted VStream call: the session, its log lines and its status."""
        session_id = self._next_session
        self._next_session += 1
        tally = _SessionTally()
        peer = _peer_of(stream)
        log.info(
            "vstream start session=%d peer=%s %s", session_id, peer, summarize_request(request)
        )
        started = time.monotonic()
        outcome = "ok"

        async def write(bodies: list[bytes]) -> None:
            # asyncio side of the bridge: every batch queued since the last
            # call, written to the connection in one go.
            await send_batch(stream, bodies)
            tally.add(bodies)

        def write_now(bodies: list[bytes]) -> bool:
            # The same from the session's Trio task, when it needs no wait.
            if not send_batch_nowait(stream, bodies):
                return False
            tally.add(bodies)
            return True

        try:
            if self._stopping.is_set():
                raise VStreamError(Code.UNAVAILABLE, SHUTTING_DOWN)
            await to_trio(self._session)(request, write, write_now)
        except VStreamError as exc:
            outcome = f"{exc.code.name}: {exc.message}"
            raise GRPCError(grpc_status(exc.code), cap_message(exc.message)) from None
        except ClientGone as exc:
            outcome = f"client gone ({exc})"
        except asyncio.CancelledError:
            outcome = "cancelled (client went away or its deadline passed)"
            raise
        except GRPCError:
            raise
        except Exception:
            outcome = "INTERNAL (see traceback)"
            log.exception("vstream session=%d failed unexpectedly", session_id)
            raise GRPCError(Status.INTERNAL, _INTERNAL_MESSAGE) from None
        finally:
            log.info(
                "vstream end session=%d peer=%s duration=%.3fs responses=%d bytes=%d outcome=%s",
                session_id,
                peer,
                time.monotonic() - started,
                tally.responses,
                tally.bytes,
                printable(outcome),
            )

    async def _session(
        self,
        request: vtgate.VStreamRequest,
        write: Callable[[list[bytes]], Awaitable[None]],
        write_now: Callable[[list[bytes]], bool] | None = None,
    ) -> None:
        """The Trio side of one VStream call; cancellation ends it at once."""
        gauges = self.gateway.metrics.gateway
        gauges[ACTIVE_SESSIONS] += 1
        try:

            async def run(send: SendResponses) -> None:
                await self._run_vstream(request, self.gateway, send)

            await pump_responses(
                run, write, write_now=write_now, stop=self._stopping, metrics=self.gateway.metrics
            )
        finally:
            gauges[ACTIVE_SESSIONS] -= 1

    # -- Execute ---------------------------------------------------------------

    async def _execute(self, stream: Any) -> None:
        """grpclib handler (asyncio) for the metadata queries."""
        request = await self._receive(stream, vtgate.ExecuteRequest, "Execute")
        try:
            answer = functools.partial(
                answer_execute, max_pattern_bytes=self.gateway.settings.max_pattern_bytes
            )
            response = await to_trio(answer)(request, self.gateway.topology, self._catalog)
        except Exception:
            log.exception("execute failed unexpectedly")
            raise GRPCError(Status.INTERNAL, _INTERNAL_MESSAGE) from None
        sql = request.query.sql if request.query is not None else ""
        log.info(
            "execute peer=%s query=%s outcome=%s",
            _peer_of(stream),
            quote(sql),
            "ok" if response.error is None else response.error.code.name,
        )
        await stream.send_message(response)


def _peer_of(stream: Any) -> str:
    try:
        addr = stream.peer.addr()
    except Exception:  # peer info is best effort; a log line must not fail a call
        return "?"
    if not addr:
        return "?"
    return f"{addr[0]}:{addr[1]}"
