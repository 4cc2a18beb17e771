"""The gateway's view of the cluster: keyspaces, serving shards, tablets."""

from vsmux.topology.model import KeyRange, KeyspaceInfo, TabletInfo, TabletList, Topology
from vsmux.topology.toml_loader import (
    TopologyError,
    load_topology,
    parse_topology,
    read_topology,
)

__all__ = [
    "KeyRange",
    "KeyspaceInfo",
    "TabletInfo",
    "TabletList",
    "Topology",
    "TopologyError",
    "load_topology",
    "parse_topology",
    "read_topology",
]
