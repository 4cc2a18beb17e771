"""gRPC over grpclib and asyncio, behind a Trio face.

This package is the only code in vsmux that imports grpclib, h2, asyncio or
trio_asyncio. Everything above it speaks Trio and :class:`~vsmux.errors.VStreamError`.
"""

from vsmux.transport._status import error_of, grpc_error, status_of

__all__ = ["error_of", "grpc_error", "status_of"]
