"""Where events come from when no real tablet is involved: the simulated cluster.

Import from here; the modules behind it (``vsmux.sources._simulated``) are
private. Real tablets are reached over gRPC by :mod:`vsmux.transport`; both
implement :class:`vsmux.mux.ShardSource`.

``SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=1)`` gives a
cluster whose ``topology`` the gateway reads and whose ``source_for`` serves
its tablets in process; :class:`vsmux.transport.SimulatedQueryService` serves
the same tablets over gRPC.
"""

from vsmux.sources._simulated import (
    Alter,
    Delete,
    GtidSet,
    SimulatedCluster,
    SimulatedTablet,
    TableContents,
    TabletFaults,
    TabletHealth,
    Upsert,
)
from vsmux.sources._simulated.binlog import DEFAULT_RETENTION_BYTES, DEFAULT_RETENTION_SECONDS
from vsmux.sources._simulated.workload import DEFAULT_MAX_TABLE_ROWS

__all__ = [
    "DEFAULT_MAX_TABLE_ROWS",
    "DEFAULT_RETENTION_BYTES",
    "DEFAULT_RETENTION_SECONDS",
    "Alter",
    "Delete",
    "GtidSet",
    "SimulatedCluster",
    "SimulatedTablet",
    "TableContents",
    "TabletFaults",
    "TabletHealth",
    "Upsert",
]
