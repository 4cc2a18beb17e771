"""gRPC over grpclib and asyncio, behind a Trio face.

This package is the only code in vsmux that imports grpclib, h2, asyncio or
trio_asyncio. Everything above it speaks Trio and :class:`~vsmux.errors.VStreamError`.
Import from here; the modules behind it are private.
"""

from vsmux.transport._bridge import SESSIONS_ENDED, SHUTTING_DOWN, ClientGone
from vsmux.transport._client_call import Connector, ResponseStream, grpc_connector, open_vstream
from vsmux.transport._endpoint import GrpcEndpoint, drop_finished_calls, open_grpc_endpoint
from vsmux.transport._etcd import (
    ETCD_KEEPALIVE_SECONDS,
    EtcdClient,
    KeyChange,
    KeySnapshot,
    open_etcd,
)
from vsmux.transport._hosting import SHUTDOWN_GRACE_SECONDS, open_grpc_server
from vsmux.transport._loop import asyncio_loop, forget_cancelled_asyncio_timers
from vsmux.transport._service import INTERNAL_MESSAGE, Call, Method, TrioService
from vsmux.transport._simulated_tablet import SimulatedQueryService, serve_cluster_tablets
from vsmux.transport._status import error_of, grpc_error, status_of
from vsmux.transport._tablet_client import (
    CONNECT_TIMEOUT_SECONDS,
    GrpcTabletSource,
    TabletChannels,
    open_tablet_channels,
)
from vsmux.transport._tls import ClientTls, ServerTls, TlsFileError, TlsFiles

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "ETCD_KEEPALIVE_SECONDS",
    "INTERNAL_MESSAGE",
    "SESSIONS_ENDED",
    "SHUTDOWN_GRACE_SECONDS",
    "SHUTTING_DOWN",
    "Call",
    "ClientGone",
    "ClientTls",
    "Connector",
    "EtcdClient",
    "GrpcEndpoint",
    "GrpcTabletSource",
    "KeyChange",
    "KeySnapshot",
    "Method",
    "ResponseStream",
    "ServerTls",
    "SimulatedQueryService",
    "TabletChannels",
    "TlsFileError",
    "TlsFiles",
    "TrioService",
    "asyncio_loop",
    "drop_finished_calls",
    "error_of",
    "forget_cancelled_asyncio_timers",
    "grpc_connector",
    "grpc_error",
    "open_etcd",
    "open_grpc_endpoint",
    "open_grpc_server",
    "open_tablet_channels",
    "open_vstream",
    "serve_cluster_tablets",
    "status_of",
]
