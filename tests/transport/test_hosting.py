"""The listener takes a burst of connections while the loop is busy."""

from __future__ import annotations

import socket
import threading
import time

from vsmux.transport import open_grpc_server

BURST = 400  # well past grpclib's default backlog of 100


def _connect_burst(port: int, connected: list[socket.socket], failed: list[Exception]) -> None:
    for _ in range(BURST):
        try:
            connected.append(socket.create_connection(("127.0.0.1", port), timeout=1.0))
        except OSError as exc:  # a full backlog drops the SYN: the connect times out
            failed.append(exc)
            return


async def test_a_burst_of_connections_waits_in_the_backlog(aio_loop: None) -> None:
    connected: list[socket.socket] = []
    failed: list[Exception] = []
    async with open_grpc_server([]) as (_, port):
        burst = threading.Thread(target=_connect_burst, args=(port, connected, failed))
        burst.start()
        # Block the loop, as a busy gateway would: nothing is accepted meanwhile,
        # so every connection must wait in the kernel's queue.
        time.sleep(1.5)  # noqa: ASYNC251
        burst.join(timeout=30)
    for sock in connected:
        sock.close()
    assert not failed, f"connection {len(connected) + 1} of {BURST} failed: {failed[0]!r}"
    assert len(connected) == BURST
