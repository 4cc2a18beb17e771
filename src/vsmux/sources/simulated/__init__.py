"""The built-in simulated cluster: tablets that behave like vttablets.

``SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=1)`` gives a
cluster whose ``topology`` the gateway reads and whose ``source_for`` serves
its tablets in process; :mod:`.grpc_service` serves the same tablets over
gRPC.
"""

from vsmux.sources.simulated.cluster import SimulatedCluster, TableContents
from vsmux.sources.simulated.faults import TabletFaults
from vsmux.sources.simulated.gtid import GtidSet
from vsmux.sources.simulated.health import TabletHealth
from vsmux.sources.simulated.tablet import SimulatedTablet
from vsmux.sources.simulated.workload import Alter, Delete, Upsert

__all__ = [
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
