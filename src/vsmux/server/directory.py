"""Which source reaches a tablet: gRPC for addressed tablets, in-process otherwise.

A topology may mix real (or gRPC-served simulated) tablets, which have an
``address``, with in-process simulated ones, which do not. The streamers see
one :class:`~vsmux.mux.SourceDirectory` either way.
"""

from __future__ import annotations

from vsmux.errors import Code, VStreamError
from vsmux.mux.shard_source import ShardSource, SourceDirectory
from vsmux.topology import TabletInfo
from vsmux.transport import GrpcTabletSource, TabletChannels

__all__ = ["RoutingDirectory"]


class RoutingDirectory:
    """Addressed tablets over gRPC (pooled channels); the rest from ``local``."""

    def __init__(self, channels: TabletChannels, local: SourceDirectory | None = None) -> None:
        self._channels = channels
        self._local = local
        self._remote: dict[tuple[str, str], GrpcTabletSource] = {}

    def source_for(self, tablet: TabletInfo) -> ShardSource:
        if tablet.address is not None:
            key = (tablet.alias, tablet.address)
            source = self._remote.get(key)
            if source is None or source.tablet != tablet:
                source = self._remote[key] = self._channels.source(tablet)
            return source
        if self._local is None:
            raise VStreamError(
                Code.FAILED_PRECONDITION,
                f"tablet {tablet.alias} ({tablet.keyspace}/{tablet.shard}) has no address and "
                "no simulated cluster runs in this gateway; give it an address in the topology",
            )
        try:
            return self._local.source_for(tablet)
        except KeyError:
            raise VStreamError(
                Code.NOT_FOUND,
                f"tablet {tablet.alias} ({tablet.keyspace}/{tablet.shard}) is not part of the "
                "simulated cluster",
            ) from None
