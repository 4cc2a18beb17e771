"""The gateway's view of the cluster: keyspaces, serving shards, tablets.

Import from here; the modules behind it are private. A :class:`Topology` is
read from a TOML file (:func:`read_topology`, :func:`load_topology`) or built
in code (the simulated cluster builds and changes its own).
"""

from vsmux.topology._address import AddressError, split_address
from vsmux.topology._model import KeyRange, KeyspaceInfo, TabletInfo, TabletList, Topology
from vsmux.topology._toml_loader import (
    TopologyError,
    dump_topology,
    load_topology,
    parse_topology,
    partition_problem,
    read_topology,
)

__all__ = [
    "AddressError",
    "KeyRange",
    "KeyspaceInfo",
    "TabletInfo",
    "TabletList",
    "Topology",
    "TopologyError",
    "dump_topology",
    "load_topology",
    "parse_topology",
    "partition_problem",
    "read_topology",
    "split_address",
]
