"""Request resolution: a client's VStreamRequest -> concrete shard positions.

Contract (implementation pending): ``resolve_request`` applies the defaults and
expansions of vstream-semantics.md section 1 and raises VStreamError wrapped as
"failed to resolve vstream parameters: ...".
"""

from __future__ import annotations

from dataclasses import dataclass

from vsmux.proto import binlogdata, topodata, vtgate
from vsmux.topology.model import Topology

__all__ = ["ResolvedRequest", "resolve_request"]


@dataclass(frozen=True, slots=True)
class ResolvedRequest:
    tablet_type: topodata.TabletType  # never UNKNOWN: UNKNOWN resolves to PRIMARY
    shard_gtids: list[binlogdata.ShardGtid]  # each with a concrete keyspace and shard
    filter: binlogdata.Filter
    flags: vtgate.VStreamFlags
    cells: list[str]  # from flags.cells, or [gateway cell]
    cell_preference: str  # "preferlocalwithalias" | "onlyspecified"


def resolve_request(
    request: vtgate.VStreamRequest, topology: Topology, gateway_cell: str
) -> ResolvedRequest:
    raise NotImplementedError
