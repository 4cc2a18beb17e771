"""Joining a server connection's writes of one loop pass into one socket write.

grpclib writes every HTTP/2 frame it queues straight to the asyncio
transport: a server answering many streams on one connection makes a
``send`` system call per response. A vttablet (grpc-go) does not: its writer
collects the frames that are ready and flushes them together once nothing
more is pending, so fifty streams' responses to one transaction leave in one
write and arrive at the gateway in one read.

:class:`CoalescingTransport` gives a grpclib server that behaviour (the
simulated tablets use it, so a gateway measured against them reads what it
would read from vttablets). Its ``write`` keeps the bytes and schedules one
flush with ``loop.call_soon``; the flush writes everything kept, in order,
after the callbacks that were ready in the same pass have run. Everything
else is the wrapped transport's. Bytes kept are at most one pass's worth;
``close`` flushes them first, ``abort`` drops them with the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CoalescingTransport", "coalesce_server_writes"]


class CoalescingTransport:
    """An asyncio transport whose writes in one loop pass leave as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._pending.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Write what is kept now (the scheduled flush, or before a close)."""
        self._scheduled = False
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # get_extra_info, is_closing, pause_reading, set_write_buffer_limits...
        return getattr(self._transport, name)


def coalesce_server_writes(server: Any) -> None:
    """Make every connection ``server`` (a grpclib Server, not started) accepts coalesce writes.

    grpclib builds one protocol per accepted connection with its
    ``_protocol_factory`` (grpclib 0.4); the protocol it builds here is
    handed a :class:`CoalescingTransport` in ``connection_made``.
    """
    make = server._protocol_factory

    def factory() -> Any:
        protocol = make()
        made = protocol.connection_made

        def connection_made(transport: asyncio.Transport) -> None:
            made(CoalescingTransport(transport, asyncio.get_event_loop()))

        protocol.connection_made = connection_made
        return protocol

    server._protocol_factory = factory
