"""The one table between gRPC statuses and VStreamError, both directions."""

from __future__ import annotations

from grpclib import GRPCError
from grpclib.const import Status

from vsmux.errors import Code, VStreamError
from vsmux.transport import error_of, grpc_error, status_of


def test_outgoing_codes_keep_their_number_but_vtrpc_extras() -> None:
    assert status_of(Code.NOT_FOUND) is Status.NOT_FOUND
    assert status_of(Code.RESOURCE_EXHAUSTED) is Status.RESOURCE_EXHAUSTED
    # gRPC has no CLUSTER_EVENT or READ_ONLY: clients must retry the first.
    assert status_of(Code.CLUSTER_EVENT) is Status.UNAVAILABLE
    assert status_of(Code.READ_ONLY) is Status.FAILED_PRECONDITION


def test_an_outgoing_message_is_cut_to_what_clients_accept() -> None:
    error = grpc_error(VStreamError(Code.INVALID_ARGUMENT, "x" * 100_000))
    assert error.status is Status.INVALID_ARGUMENT
    assert error.message is not None and len(error.message.encode()) < 16_384


def test_an_incoming_status_keeps_its_code_and_names_the_peer_when_asked() -> None:
    failure = GRPCError(Status.FAILED_PRECONDITION, "position purged")
    tablet = error_of(failure, "tablet zone1-0000000101")
    assert (tablet.code, tablet.message) == (
        Code.FAILED_PRECONDITION,
        "tablet zone1-0000000101: position purged",
    )
    gateway = error_of(failure, "127.0.0.1:1", peer_kind="gateway")
    assert gateway.message == "position purged"


def test_tablet_connection_failures_are_unavailable_and_say_what_to_check() -> None:
    where = "tablet zone1-0000000101 (127.0.0.1:9) of ks/-80"
    refused = error_of(ConnectionRefusedError(111, "Connect call failed"), where)
    assert (refused.code, refused.message) == (
        Code.UNAVAILABLE,
        f"{where}: connection refused; is the tablet running?",
    )
    slow = error_of(TimeoutError(), where, connect_timeout=10)
    assert slow.code == Code.UNAVAILABLE
    assert slow.message.startswith(f"{where}: no connection within 10s; check that")
    dropped = error_of(ConnectionResetError("reset by peer"), where)
    assert dropped.message == f"{where}: connection failed or dropped: reset by peer"


def test_gateway_connection_failures_read_as_vsmux_tail_always_said() -> None:
    for failure in (ConnectionRefusedError("refused"), TimeoutError("slow"), EOFError()):
        error = error_of(failure, "127.0.0.1:9", peer_kind="gateway")
        if isinstance(failure, EOFError):
            assert error.code == Code.UNKNOWN
            continue
        assert error.code == Code.UNAVAILABLE
        assert error.message == f"connection to 127.0.0.1:9 failed or dropped: {failure}"


def test_anything_else_is_unknown_and_a_vstream_error_passes_through() -> None:
    odd = error_of(ValueError("what"), "127.0.0.1:9")
    assert (odd.code, odd.message) == (Code.UNKNOWN, "127.0.0.1:9: ValueError: what")
    mine = VStreamError(Code.NOT_FOUND, "no such keyspace")
    assert error_of(mine, "anyone") is mine
