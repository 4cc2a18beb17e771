"""The ``vtgateservice.Vitess`` endpoint: VStream and metadata Execute.

The handlers are Trio functions behind the transport's adapter
(:class:`vsmux.transport.TrioService`): it reads each request as raw bytes
(size limit from the gRPC frame header, :data:`REQUEST_READ_TIMEOUT_SECONDS`
to arrive), enters Trio once per call and turns the handler's outcome into
the call's status. Here the request goes through :mod:`vsmux.server.intake`
(protobuf's own parser, field-naming errors for malformed input) and, for
VStream, :mod:`vsmux.core.limits`, before any other work. A refused request
costs one INFO log line with the peer.

A VStream call is admitted per connection (:class:`vsmux.core.admission.Admission`),
then runs its session, whose responses leave as the pre-encoded bytes it
produced, each batch of them in one write (``Call.stream_responses``). Each
session logs a start line and an end line with what it sent and its outcome.

Outcomes, as the client sees them:

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

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from vsmux.core.admission import Admission
from vsmux.core.limits import check_vstream_request
from vsmux.core.quoting import printable, quote
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import Gateway, SendResponses
from vsmux.proto import vtgate
from vsmux.server.execute import TableCatalog, answer_execute
from vsmux.server.intake import decode_request
from vsmux.server.summary import summarize_request
from vsmux.transport import (
    INTERNAL_MESSAGE,
    SHUTTING_DOWN,
    Call,
    ClientGone,
    Method,
    TrioService,
)

__all__ = ["ACTIVE_SESSIONS", "REQUEST_READ_TIMEOUT_SECONDS", "RunVStream", "VitessService"]

log = logging.getLogger("vsmux.server")

RunVStream = Callable[[vtgate.VStreamRequest, Gateway, SendResponses], Awaitable[None]]
R = TypeVar("R", vtgate.VStreamRequest, vtgate.ExecuteRequest)

# Gateway-wide gauge in Metrics.gateway.
ACTIVE_SESSIONS = "active_sessions"

# How long a call may take to deliver its request message. Clients send it
# with the call; one that opens calls and never sends would otherwise hold a
# task and its buffers for as long as the connection lives.
REQUEST_READ_TIMEOUT_SECONDS = 10.0


class VitessService:
    """Serves ``/vtgateservice.Vitess/VStream`` and ``/Execute`` for one gateway.

    ``run_vstream`` is the multiplexer entry point (``vsmux.mux.run_vstream``);
    ``catalog`` answers ``SHOW TABLES``. The handlers run in Trio, one call
    each; a call whose client goes away is cancelled at once.
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

    def grpc_service(self) -> TrioService:
        """``vtgateservice.Vitess`` for the transport to serve: VStream and Execute.

        The request size limit and :data:`REQUEST_READ_TIMEOUT_SECONDS` are
        taken now and hold for the life of the server built from it.
        """
        return TrioService(
            "vtgateservice.Vitess",
            [
                Method("VStream", self._vstream),
                Method("Execute", self._execute, vtgate.ExecuteResponse),
            ],
            max_request_bytes=self.gateway.settings.max_request_bytes,
            read_timeout=REQUEST_READ_TIMEOUT_SECONDS,
        )

    def begin_shutdown(self) -> None:
        """End running sessions with UNAVAILABLE and refuse new ones. Call from Trio."""
        self._stopping.set()

    @property
    def shutting_down(self) -> bool:
        return self._stopping.is_set()

    # -- VStream ---------------------------------------------------------------

    def _receive(self, call: Call, message_type: type[R], method: str) -> R:
        """The request, decoded and checked; a refused one is logged and raised."""
        settings = self.gateway.settings
        try:
            request = decode_request(call.request(), message_type, settings.max_request_fields)
            if isinstance(request, vtgate.VStreamRequest):
                check_vstream_request(request, settings)
        except VStreamError as exc:
            log.info(
                "%s refused peer=%s %s: %s",
                method.lower(),
                call.peer,
                exc.code.name,
                printable(exc.message),
            )
            raise
        return request

    async def _vstream(self, call: Call) -> None:
        """One VStream call, in Trio. Cancelled when the client goes away."""
        request = self._receive(call, vtgate.VStreamRequest, "VStream")
        # The HTTP/2 connection the call came on: admission counts calls per connection.
        try:
            self._admission.admit(call.connection)
        except VStreamError as exc:
            log.info("vstream refused peer=%s %s", call.peer, exc.message)
            raise
        try:
            await self._stream_session(call, request)
        finally:
            self._admission.release(call.connection)

    async def _stream_session(self, call: Call, request: vtgate.VStreamRequest) -> None:
        """One admitted VStream call: the session, its log lines and its outcome."""
        session_id = self._next_session
        self._next_session += 1
        peer = call.peer
        log.info(
            "vstream start session=%d peer=%s %s", session_id, peer, summarize_request(request)
        )
        started = time.monotonic()
        outcome = "ok"
        try:
            if self._stopping.is_set():
                raise VStreamError(Code.UNAVAILABLE, SHUTTING_DOWN)
            await self._session(request, call)
        except VStreamError as exc:
            outcome = f"{exc.code.name}: {exc.message}"
            raise
        except ClientGone as exc:
            outcome = f"client gone ({exc})"
            raise
        except Exception:
            outcome = "INTERNAL (see traceback)"
            log.exception("vstream session=%d failed unexpectedly", session_id)
            raise VStreamError(Code.INTERNAL, INTERNAL_MESSAGE) from None
        except BaseException:
            # trio.Cancelled, grouped when it came out of the session's nurseries.
            outcome = "cancelled (client went away or its deadline passed)"
            raise
        finally:
            log.info(
                "vstream end session=%d peer=%s duration=%.3fs responses=%d bytes=%d outcome=%s",
                session_id,
                peer,
                time.monotonic() - started,
                call.responses,
                call.bytes,
                printable(outcome),
            )

    async def _session(self, request: vtgate.VStreamRequest, call: Call) -> None:
        """The session of one VStream call; cancellation ends it at once."""
        gauges = self.gateway.metrics.gateway
        gauges[ACTIVE_SESSIONS] += 1
        try:

            async def run(send: SendResponses) -> None:
                await self._run_vstream(request, self.gateway, send)

            await call.stream_responses(run, stop=self._stopping, metrics=self.gateway.metrics)
        finally:
            gauges[ACTIVE_SESSIONS] -= 1

    # -- Execute ---------------------------------------------------------------

    async def _execute(self, call: Call) -> vtgate.ExecuteResponse:
        """One Execute call (the metadata queries), in Trio; returns the response."""
        request = self._receive(call, vtgate.ExecuteRequest, "Execute")
        try:
            response = await answer_execute(
                request,
                self.gateway.topology,
                self._catalog,
                max_pattern_bytes=self.gateway.settings.max_pattern_bytes,
            )
        except Exception:
            log.exception("execute failed unexpectedly")
            raise VStreamError(Code.INTERNAL, INTERNAL_MESSAGE) from None
        sql = request.query.sql if request.query is not None else ""
        log.info(
            "execute peer=%s query=%s outcome=%s",
            call.peer,
            quote(sql),
            "ok" if response.error is None else response.error.code.name,
        )
        return response
