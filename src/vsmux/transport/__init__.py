"""gRPC over grpclib and asyncio, behind a Trio face.

This package is the only code in vsmux that imports grpclib, h2, asyncio or
trio_asyncio. Everything above it speaks Trio and :class:`~vsmux.errors.VStreamError`.
Import from here; the modules behind it are private.
"""

from vsmux.transport._client_call import Connector, ResponseStream, grpc_connector, open_vstream
from vsmux.transport._loop import asyncio_loop
from vsmux.transport._status import error_of, grpc_error, status_of

__all__ = [
    "Connector",
    "ResponseStream",
    "asyncio_loop",
    "error_of",
    "grpc_connector",
    "grpc_error",
    "open_vstream",
    "status_of",
]
