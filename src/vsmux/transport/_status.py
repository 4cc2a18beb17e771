"""The one translation between gRPC statuses and :class:`VStreamError`.

Both directions live here so they cannot drift apart:

- outgoing (a session's error becomes the call's status): :func:`status_of`
  keeps the number, since vtrpc codes are gRPC codes, except vtrpc's two
  extras, which gRPC lacks: CLUSTER_EVENT (a failover or reshard in progress)
  goes out as UNAVAILABLE so clients retry, READ_ONLY as FAILED_PRECONDITION.
  :func:`grpc_error` also cuts the message to what clients accept in a
  trailer.
- incoming (a peer's status or a broken connection becomes a VStreamError):
  :func:`error_of` for anything a call to a tablet or a gateway raised. A
  status keeps its code and the peer's message; a connection that failed,
  was refused, timed out or dropped becomes UNAVAILABLE, which the retry
  rules treat as "try again, perhaps elsewhere".
"""

from __future__ import annotations

import asyncio
from typing import Literal

from grpclib import GRPCError
from grpclib.const import Status
from grpclib.exceptions import ProtocolError, StreamTerminatedError

from vsmux.core.quoting import cap_message
from vsmux.errors import Code, VStreamError

__all__ = ["error_of", "grpc_error", "status_of"]


def status_of(code: Code) -> Status:
    """The gRPC status a vtrpc code goes out as."""
    value = int(code)
    if value == Code.CLUSTER_EVENT:
        return Status.UNAVAILABLE
    if value == Code.READ_ONLY:
        return Status.FAILED_PRECONDITION
    try:
        return Status(value)
    except ValueError:
        return Status.UNKNOWN


def grpc_error(error: VStreamError) -> GRPCError:
    """``error`` as the GRPCError that ends a call with its status and message."""
    return GRPCError(status_of(error.code), cap_message(error.message))


def error_of(
    exc: BaseException,
    peer: str,
    *,
    peer_kind: Literal["tablet", "gateway"] = "tablet",
    connect_timeout: float | None = None,
) -> VStreamError:
    """The VStreamError that a failure of a call to ``peer`` stands for.

    ``peer`` names the other end. For a tablet ("tablet zone1-0000000101
    (127.0.0.1:15101) of commerce/-80") every message starts with it, since
    the tablet's own messages do not say which tablet or shard they are
    about, and a connection failure says what to check. For a gateway
    ("127.0.0.1:15991", what ``vsmux tail`` and the demo call) a status's
    message is shown as it is (a gateway's messages already say what
    failed), and every connection failure reads "connection to <address>
    failed or dropped: <reason>", which users and scripts match on.
    ``connect_timeout`` is said in the message of a call that timed out
    connecting.
    """
    if isinstance(exc, VStreamError):
        return exc
    tablet = peer_kind == "tablet"
    if isinstance(exc, GRPCError):
        try:
            code = Code(exc.status.value)
        except ValueError:
            code = Code.UNKNOWN
        message = exc.message or exc.status.name
        return VStreamError(code, f"{peer}: {message}" if tablet else message)
    if not isinstance(exc, _CONNECTION_FAILURES):
        return VStreamError(Code.UNKNOWN, f"{peer}: {type(exc).__name__}: {exc}")
    if not tablet:
        detail = str(exc) or type(exc).__name__
        return VStreamError(Code.UNAVAILABLE, f"connection to {peer} failed or dropped: {detail}")
    if isinstance(exc, TimeoutError):
        within = f" within {connect_timeout:g}s" if connect_timeout is not None else ""
        return VStreamError(
            Code.UNAVAILABLE,
            f"{peer}: no connection{within}; check that the tablet is up and the address is right",
        )
    if isinstance(exc, ConnectionRefusedError):
        return VStreamError(Code.UNAVAILABLE, f"{peer}: connection refused; is the tablet running?")
    return VStreamError(Code.UNAVAILABLE, f"{peer}: connection failed or dropped: {exc}")


# What a call raises when the connection, not the peer, failed.
_CONNECTION_FAILURES = (
    TimeoutError,
    OSError,  # ConnectionRefusedError, ConnectionResetError, ...
    StreamTerminatedError,
    ProtocolError,
    asyncio.IncompleteReadError,
)
