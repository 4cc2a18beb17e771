"""The ``vtgateservice.Vitess`` endpoint: VStream and metadata Execute.

The handlers are Trio functions behind the transport's adapter
(:class:`vsmux.transport.TrioService`): it reads each request as raw bytes
(size limit from the gRPC frame header, :data:`REQUEST_READ_TIMEOUT_SECONDS`
to arrive), enters Trio once per call and turns the handler's outcome into
the call's status. Here the request goes through :mod:`vsmux.server.intake`
(protobuf's own parser, field-naming errors for malformed input) and, for
VStream, :mod:`vsmux.core.limits`, before any other work. A refused request
costs one INFO log line with the peer.

Security (:mod:`vsmux.server.auth`): with ``--grpc_auth_mode`` a VStream or
Execute call is authenticated first (UNAUTHENTICATED otherwise); a VStream
request is then held to the caller's grant from the access file
(:func:`vsmux.core.access.authorize_vstream`: PERMISSION_DENIED, or a
``/regex`` narrowed to allowed keyspaces) before anything is started, and
the caller's name replaces the principal of the request's CallerID, which
the tablets get as ``effective_caller_id`` (the gateway itself is the
``immediate_caller_id``). Execute's answers list only what the grant allows.
Every refusal is counted by reason and user (``Metrics.denials``).

A VStream call takes a token of the new-streams-per-second bucket
(:mod:`vsmux.core.ratelimit`) and is admitted per connection, per user and
in all (:class:`vsmux.core.admission.Admission`), then runs its session,
whose responses leave as the pre-encoded bytes it produced, each batch of
them in one write (``Call.stream_responses``). Each session logs a start
line and an end line with what it sent and its outcome.

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
from collections.abc import Awaitable
from typing import Protocol, TypeVar

import trio

from vsmux.core.access import authorize_vstream
from vsmux.core.admission import Admission, LimitExceeded
from vsmux.core.limits import check_vstream_request
from vsmux.core.quoting import printable, quote
from vsmux.core.ratelimit import TokenBucket
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import Gateway, SendResponses
from vsmux.proto import vtgate, vtrpc
from vsmux.server.auth import Security
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


class RunVStream(Protocol):
    """``vsmux.mux.run_vstream``'s shape; ``share`` is passed only when it is False."""

    def __call__(
        self,
        request: vtgate.VStreamRequest,
        gateway: Gateway,
        send: SendResponses,
        /,
        *,
        share: bool = True,
    ) -> Awaitable[None]: ...


#: The request metadata that turns sharing off for one call ("vsmux-share: off").
SHARE_METADATA = "vsmux-share"
_SHARE_OFF = frozenset(("off", "false", "0", "no"))
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
    ``catalog`` answers ``SHOW TABLES``; ``security`` authenticates callers
    and holds the access file (default: neither). The handlers run in Trio,
    one call each; a call whose client goes away is cancelled at once.
    """

    def __init__(
        self,
        gateway: Gateway,
        run_vstream: RunVStream,
        catalog: TableCatalog,
        security: Security | None = None,
    ) -> None:
        self.gateway = gateway
        self._run_vstream = run_vstream
        self._catalog = catalog
        self._security = security if security is not None else Security()
        self._stopping = trio.Event()
        self._next_session = 1
        settings = gateway.settings
        self._admission = Admission(
            settings.max_streams_per_connection,
            settings.max_streaming_connections,
            settings.max_streams,
            settings.max_streams_per_user,
        )
        rate = settings.max_new_streams_per_second
        self._new_streams = None if rate is None else TokenBucket(rate, now=trio.current_time())

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

    def _identify(self, call: Call, method: str) -> str | None:
        """The authenticated caller's name (None without auth); refusals logged and counted."""
        try:
            return self._security.identify(call)
        except VStreamError as exc:
            self.gateway.metrics.deny("unauthenticated")
            _log_refusal(call, method, exc)
            raise

    def _receive(self, call: Call, message_type: type[R], method: str) -> R:
        """The request, decoded and checked; a refused one is logged and raised."""
        settings = self.gateway.settings
        try:
            request = decode_request(call.request(), message_type, settings.max_request_fields)
            if isinstance(request, vtgate.VStreamRequest):
                check_vstream_request(request, settings)
        except VStreamError as exc:
            _log_refusal(call, method, exc)
            raise
        return request

    async def _vstream(self, call: Call) -> None:
        """One VStream call, in Trio. Cancelled when the client goes away."""
        user = self._identify(call, "VStream")
        request = self._receive(call, vtgate.VStreamRequest, "VStream")
        metrics = self.gateway.metrics
        label = user or ""
        try:
            request = authorize_vstream(
                request, self.gateway.topology, label, self._security.grant_for(user)
            )
        except VStreamError as exc:
            if exc.code == Code.PERMISSION_DENIED:
                metrics.deny("permission_denied", label)
            _log_refusal(call, "VStream", exc, label)
            raise
        if user is not None:
            request.caller_id = _caller_id(user, request.caller_id)
        # The HTTP/2 connection the call came on: admission counts calls per connection.
        try:
            if self._new_streams is not None:
                self._new_streams.take(trio.current_time())
            self._admission.admit(call.connection, user)
        except LimitExceeded as exc:
            metrics.hit_limit(exc.limit, label)
            _log_refusal(call, "VStream", exc, label)
            raise
        try:
            await self._stream_session(call, request)
        finally:
            self._admission.release(call.connection, user)

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
            share = call.metadata.get(SHARE_METADATA, "").strip().lower() not in _SHARE_OFF

            async def run(send: SendResponses) -> None:
                if share:
                    await self._run_vstream(request, self.gateway, send)
                else:
                    await self._run_vstream(request, self.gateway, send, share=False)

            await call.stream_responses(run, stop=self._stopping, metrics=self.gateway.metrics)
        finally:
            gauges[ACTIVE_SESSIONS] -= 1

    # -- Execute ---------------------------------------------------------------

    async def _execute(self, call: Call) -> vtgate.ExecuteResponse:
        """One Execute call (the metadata queries), in Trio; returns the response."""
        user = self._identify(call, "Execute")
        request = self._receive(call, vtgate.ExecuteRequest, "Execute")
        grant = self._security.grant_for(user)
        try:
            response = await answer_execute(
                request,
                self.gateway.topology,
                self._catalog,
                max_pattern_bytes=self.gateway.settings.max_pattern_bytes,
                grant=grant,
                user=user or "",
            )
        except Exception:
            log.exception("execute failed unexpectedly")
            raise VStreamError(Code.INTERNAL, INTERNAL_MESSAGE) from None
        sql = request.query.sql if request.query is not None else ""
        if response.error is not None and response.error.code == vtrpc.Code.PERMISSION_DENIED:
            self.gateway.metrics.deny("permission_denied", user or "")
        log.info(
            "execute peer=%s%s query=%s outcome=%s",
            call.peer,
            "" if user is None else f" user={quote(user, 64)}",
            quote(sql),
            "ok" if response.error is None else response.error.code.name,
        )
        return response


def _caller_id(user: str, declared: vtrpc.CallerId | None) -> vtrpc.CallerId:
    """The CallerID the tablets get: the authenticated name as principal.

    The client's component and subcomponent are kept (they are informational);
    its self-declared principal is replaced.
    """
    if declared is None:
        return vtrpc.CallerId(principal=user)
    return vtrpc.CallerId(
        principal=user, component=declared.component, subcomponent=declared.subcomponent
    )


def _log_refusal(call: Call, method: str, exc: VStreamError, user: str | None = None) -> None:
    """One INFO line for a refused call: the method, the peer, the user if known, why."""
    who = "" if user is None else f" user={quote(user, 64)}"
    reason = printable(exc.message)
    log.info("%s refused peer=%s%s %s: %s", method.lower(), call.peer, who, exc.code.name, reason)
