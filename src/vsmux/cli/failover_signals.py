"""``vsmux cluster``: failovers on a signal, for trying the gateway's failover buffer.

- SIGUSR1: a planned reparent of a random serving shard (its primary becomes a
  replica, its replica the primary, at once);
- SIGUSR2: an unplanned failover of a random serving shard (the primary dies;
  its replica is promoted ``UNPLANNED_PROMOTE_SECONDS`` later).

Each prints one line. Both need a replica per shard (``--tablet-types
primary,replica``); without one the signal is reported and ignored.
"""

from __future__ import annotations

import random
import signal
import sys

import trio

from vsmux.proto import topodata
from vsmux.sources import SimulatedCluster

__all__ = ["UNPLANNED_PROMOTE_SECONDS", "failovers_on_signals"]

#: How long a shard has no primary in an unplanned failover (SIGUSR2).
UNPLANNED_PROMOTE_SECONDS = 3.0


async def failovers_on_signals(
    cluster: SimulatedCluster,
    rng: random.Random | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Reparent (SIGUSR1) or fail over (SIGUSR2) a random shard, until cancelled.

    ``task_status.started()`` is called once the signals are caught, so a
    signal sent after that never kills the process. Cancellation stops an
    unplanned failover between its two halves: that primary stays dead.
    """
    rng = rng or random.Random()
    with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2) as received:
        task_status.started()
        async with trio.open_nursery() as failovers:
            async for signum in received:
                shards = _shards_with_a_replica(cluster)
                if not shards:
                    print(
                        f"{signal.Signals(signum).name}: no shard has a replica to promote "
                        "(run with --tablet-types primary,replica)",
                        file=sys.stderr,
                        flush=True,
                    )
                    continue
                keyspace, shard = rng.choice(shards)
                if signum == signal.SIGUSR1:
                    old = cluster.tablet(keyspace, shard).alias
                    new = cluster.reparent(keyspace, shard)
                    print(f"planned reparent of {keyspace}/{shard}: {old} -> {new}", flush=True)
                else:
                    failovers.start_soon(_fail_over, cluster, keyspace, shard)


async def _fail_over(cluster: SimulatedCluster, keyspace: str, shard: str) -> None:
    old = cluster.tablet(keyspace, shard).alias
    print(
        f"unplanned failover of {keyspace}/{shard}: {old} is down, a replica is promoted "
        f"in {UNPLANNED_PROMOTE_SECONDS:g}s",
        flush=True,
    )
    new = await cluster.fail_over(keyspace, shard, promote_after=UNPLANNED_PROMOTE_SECONDS)
    print(f"unplanned failover of {keyspace}/{shard}: {new} is the primary", flush=True)


def _shards_with_a_replica(cluster: SimulatedCluster) -> list[tuple[str, str]]:
    topology = cluster.topology
    serving = {(k, s) for k in topology.keyspace_names() for s in topology.serving_shards(k)}
    found = {
        (t.info.keyspace, t.info.shard)
        for t in cluster.tablets()
        if t.info.tablet_type == topodata.TabletType.REPLICA
    }
    return sorted(found & serving)
