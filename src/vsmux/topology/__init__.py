"""The gateway's view of the cluster: keyspaces, serving shards, tablets."""

from vsmux.topology.model import KeyRange, KeyspaceInfo, TabletInfo, Topology
from vsmux.topology.toml_loader import TopologyError, load_topology, parse_topology

__all__ = [
    "KeyRange",
    "KeyspaceInfo",
    "TabletInfo",
    "Topology",
    "TopologyError",
    "load_topology",
    "parse_topology",
]
