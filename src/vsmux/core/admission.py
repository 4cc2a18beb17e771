"""Admission of VStream calls: streams per client connection, connections in all.

A gateway that takes every call a client opens can be made to run thousands
of sessions (each with a stream per shard to the tablets) from one connection,
or starve everyone by opening connections without end. :class:`Admission`
counts the running VStream calls of each client connection and the
connections that have any, and refuses a call over either limit with
RESOURCE_EXHAUSTED naming the limit, its value and the ``vsmux serve`` option
that sets it. A refusal is an answer, not a wait: the client learns at once.

Pure bookkeeping: the caller passes any hashable that stands for the
connection, calls :meth:`Admission.admit` before the session starts and
:meth:`Admission.release` when it ends (normally or not).
"""

from __future__ import annotations

from collections.abc import Hashable

from vsmux.errors import Code, VStreamError

__all__ = ["OPTIONS", "Admission"]

#: The ``vsmux serve`` option of each admission limit (GatewaySettings fields).
OPTIONS = {
    "max_streams_per_connection": "--max-streams-per-connection",
    "max_streaming_connections": "--max-streaming-connections",
}


class Admission:
    """Running VStream calls per connection, within both limits."""

    def __init__(self, max_streams_per_connection: int, max_streaming_connections: int) -> None:
        self._per_connection = max_streams_per_connection
        self._connections = max_streaming_connections
        self._running: dict[Hashable, int] = {}

    def admit(self, connection: Hashable) -> None:
        """Count one more call on ``connection``, or raise RESOURCE_EXHAUSTED."""
        running = self._running.get(connection, 0)
        if running >= self._per_connection:
            raise VStreamError(
                Code.RESOURCE_EXHAUSTED,
                f"this connection already runs {running} VStream calls, the most one "
                f"connection may ({OPTIONS['max_streams_per_connection']}); open another "
                "connection or end a stream",
            )
        if running == 0 and len(self._running) >= self._connections:
            raise VStreamError(
                Code.RESOURCE_EXHAUSTED,
                f"the gateway already streams to {len(self._running)} connections, the most "
                f"it takes ({OPTIONS['max_streaming_connections']}); retry later or use "
                "another gateway",
            )
        self._running[connection] = running + 1

    def release(self, connection: Hashable) -> None:
        """One call on ``connection`` ended (after a successful :meth:`admit`)."""
        running = self._running[connection] - 1
        if running:
            self._running[connection] = running
        else:
            del self._running[connection]

    @property
    def connections(self) -> int:
        """Connections with at least one running call."""
        return len(self._running)

    @property
    def streams(self) -> int:
        """Running calls over all connections."""
        return sum(self._running.values())
