"""The built-in simulated cluster: tablets that behave like vttablets.

``SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=1)`` gives a
cluster whose ``topology`` the gateway reads and whose ``source_for`` serves
its tablets in process; :class:`vsmux.transport.SimulatedQueryService` serves
the same tablets over gRPC. In short:

- writes: ``apply_random_transactions(n)``, ``await run_workload(rate)``,
  ``execute(keyspace, Upsert(...), Delete(...))``, ``execute(keyspace, Alter(...))``;
- ground truth: ``table_contents(keyspace)``, ``position(keyspace, shard)``;
- resharding: ``reshard(keyspace, new_serving_shards)`` (journals on the old shards);
- streams served: ``stream_counts(keyspace)`` (VStreams and StreamHealth
  streams open now and opened in all, summed over the tablets);
- per tablet (``tablet(keyspace, shard, type)``): ``.faults`` (fail_after,
  end_after, stall/resume, slow_down), ``.health`` (set_type, set_serving,
  set_lag, set_error), ``.position``, ``.tables``.

Modules: :mod:`.schema` (demo tables, FIELD metadata), :mod:`.rows` (event
encoding), :mod:`.gtid`, :mod:`.binlog` (one shard's server), :mod:`.copy`,
:mod:`.stream` (one VStream), :mod:`.tablet`, :mod:`.faults`, :mod:`.health`,
:mod:`.counts`, :mod:`.workload`, :mod:`.routing`, :mod:`.cluster`.
"""

from vsmux.sources._simulated.cluster import SimulatedCluster, TableContents
from vsmux.sources._simulated.counts import StreamCount, StreamCounts
from vsmux.sources._simulated.faults import TabletFaults
from vsmux.sources._simulated.gtid import GtidSet
from vsmux.sources._simulated.health import TabletHealth
from vsmux.sources._simulated.tablet import SimulatedTablet
from vsmux.sources._simulated.workload import Alter, Delete, Upsert

__all__ = [
    "Alter",
    "Delete",
    "GtidSet",
    "SimulatedCluster",
    "SimulatedTablet",
    "StreamCount",
    "StreamCounts",
    "TableContents",
    "TabletFaults",
    "TabletHealth",
    "Upsert",
]
