"""The gateway's view of the cluster: keyspaces, serving shards, tablets.

Import from here; the modules behind it are private. A :class:`Topology` is
read from a TOML file (:func:`read_topology`, :func:`load_topology`) or built
in code (the simulated cluster builds and changes its own), or kept up to
date from a Vitess cluster's topology records (:class:`VitessRecords`, fed
by the etcd watcher in ``vsmux.server``).
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
from vsmux.topology._vitess_records import (
    CellLocation,
    RecordError,
    VitessRecords,
    cells_alias_record,
    serving_shards,
    vitess_records,
)

__all__ = [
    "AddressError",
    "CellLocation",
    "KeyRange",
    "KeyspaceInfo",
    "RecordError",
    "TabletInfo",
    "TabletList",
    "Topology",
    "TopologyError",
    "VitessRecords",
    "cells_alias_record",
    "dump_topology",
    "load_topology",
    "parse_topology",
    "partition_problem",
    "read_topology",
    "serving_shards",
    "split_address",
    "vitess_records",
]
