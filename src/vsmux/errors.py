"""The one error type that crosses layers.

Every failure a client can see is a :class:`VStreamError`: a vtrpc code (the
same numbers as gRPC status codes) and a message that names the keyspace,
shard or tablet involved and what to do. Sources raise it for tablet errors
(carrying the tablet's own code), ``core`` raises it for bad requests, and the
server turns it into a gRPC status at the edge. Nothing else is translated
anywhere else.
"""

from __future__ import annotations

from vsmux.proto.vtrpc import Code

__all__ = ["Code", "VStreamError"]


class VStreamError(Exception):
    """A failure with a vtrpc/gRPC code and a user-facing message."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def wrap(self, prefix: str) -> VStreamError:
        """The same error with ``prefix: `` in front of its message."""
        return VStreamError(self.code, f"{prefix}: {self.message}")

    def __repr__(self) -> str:
        return f"VStreamError({self.code.name}, {self.message!r})"
