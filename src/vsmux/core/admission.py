"""Admission of VStream calls: per connection, per user, and in all.

A gateway that takes every call a client opens can be made to run thousands
of sessions (each with a stream per shard to the tablets) from one connection,
or starve everyone by opening connections without end. :class:`Admission`
counts the running VStream calls of each client connection, the connections
that have any, the calls of each authenticated user and the calls in all,
and refuses a call over any limit with RESOURCE_EXHAUSTED naming the limit,
its value and the ``vsmux serve`` option that sets it. A refusal is an
answer, not a wait: the client learns at once. The per-user limit counts
authenticated callers only (``user`` None is not counted): a self-declared
CallerID is no identity to limit.

Pure bookkeeping: the caller passes any hashable that stands for the
connection (and the caller's name), calls :meth:`Admission.admit` before the
session starts and :meth:`Admission.release` with the same arguments when it
ends (normally or not).
"""

from __future__ import annotations

from collections.abc import Hashable

from vsmux.core.quoting import quote
from vsmux.errors import Code, VStreamError

__all__ = ["OPTIONS", "Admission", "LimitExceeded"]

#: The ``vsmux serve`` option of each admission limit (GatewaySettings fields).
OPTIONS = {
    "max_streams_per_connection": "--max-streams-per-connection",
    "max_streaming_connections": "--max-streaming-connections",
    "max_streams": "--max-streams",
    "max_streams_per_user": "--max-streams-per-user",
}


class Admission:
    """Running VStream calls per connection, within both limits."""

    def __init__(
        self,
        max_streams_per_connection: int,
        max_streaming_connections: int,
        max_streams: int | None = None,
        max_streams_per_user: int | None = None,
    ) -> None:
        self._per_connection = max_streams_per_connection
        self._connections = max_streaming_connections
        self._total = max_streams
        self._per_user = max_streams_per_user
        self._running: dict[Hashable, int] = {}
        self._users: dict[str, int] = {}
        self._streams = 0

    def admit(self, connection: Hashable, user: str | None = None) -> None:
        """Count one more call on ``connection`` (by ``user``), or raise RESOURCE_EXHAUSTED.

        The exception's ``limit`` attribute names the limit (a GatewaySettings
        field), for metrics.
        """
        if self._total is not None and self._streams >= self._total:
            raise LimitExceeded(
                "max_streams",
                f"the gateway already runs {self._streams} VStream calls, the most it takes "
                f"({OPTIONS['max_streams']}); retry later or use another gateway",
            )
        if user is not None and self._per_user is not None:
            mine = self._users.get(user, 0)
            if mine >= self._per_user:
                raise LimitExceeded(
                    "max_streams_per_user",
                    f"user {quote(user, 64)} already runs {mine} VStream calls, the most one "
                    f"user may ({OPTIONS['max_streams_per_user']}); end a stream first",
                )
        running = self._running.get(connection, 0)
        if running >= self._per_connection:
            raise LimitExceeded(
                "max_streams_per_connection",
                f"this connection already runs {running} VStream calls, the most one "
                f"connection may ({OPTIONS['max_streams_per_connection']}); open another "
                "connection or end a stream",
            )
        if running == 0 and len(self._running) >= self._connections:
            raise LimitExceeded(
                "max_streaming_connections",
                f"the gateway already streams to {len(self._running)} connections, the most "
                f"it takes ({OPTIONS['max_streaming_connections']}); retry later or use "
                "another gateway",
            )
        self._running[connection] = running + 1
        self._streams += 1
        if user is not None:
            self._users[user] = self._users.get(user, 0) + 1

    def release(self, connection: Hashable, user: str | None = None) -> None:
        """One call on ``connection`` ended (after a successful :meth:`admit`)."""
        running = self._running[connection] - 1
        if running:
            self._running[connection] = running
        else:
            del self._running[connection]
        self._streams -= 1
        if user is not None:
            mine = self._users[user] - 1
            if mine:
                self._users[user] = mine
            else:
                del self._users[user]

    @property
    def connections(self) -> int:
        """Connections with at least one running call."""
        return len(self._running)

    @property
    def streams(self) -> int:
        """Running calls over all connections."""
        return self._streams

    def user_streams(self, user: str) -> int:
        """Running calls of ``user``."""
        return self._users.get(user, 0)


class LimitExceeded(VStreamError):
    """RESOURCE_EXHAUSTED from one admission limit; ``limit`` is its settings field."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(Code.RESOURCE_EXHAUSTED, message)
        self.limit = limit
