"""The gateway's view of the cluster: keyspaces, serving shards, tablets."""

from vsmux.topology.model import KeyRange, KeyspaceInfo, TabletInfo, Topology

__all__ = ["KeyRange", "KeyspaceInfo", "TabletInfo", "Topology"]
