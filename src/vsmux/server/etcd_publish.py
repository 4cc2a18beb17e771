"""Publishing a cluster's topology into etcd as a Vitess cluster keeps it.

``vsmux cluster --topo-global-server-address`` registers its simulated
tablets the way vttablets and vtctld do (``vsmux.topology.vitess_records``:
Keyspace, Shard, CellInfo, Tablet, SrvKeyspace, SrvVSchema), so a gateway
started with ``--topo-implementation etcd2`` finds them. The cluster's
topology is read again every ``interval`` and only changed records are
written: a reparent rewrites the Shard and Tablet records, a reshard adds
the new shards' records and then the SrvKeyspace (serving records are
always written after the rest, so a reader never sees shards without their
tablets). An etcd that goes away is retried with backoff, and everything is
written again once it is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

import trio

from vsmux.errors import VStreamError
from vsmux.topology import Topology, vitess_records
from vsmux.transport import open_etcd

__all__ = ["PUBLISH_INTERVAL_SECONDS", "addressed_topology", "publish_topology"]

log = logging.getLogger("vsmux.topology")

#: How often the cluster's topology is compared with what etcd was given.
PUBLISH_INTERVAL_SECONDS = 0.1
_BACKOFF_START_SECONDS = 0.25
_BACKOFF_MAX_SECONDS = 4.0


def addressed_topology(live: Topology, addresses: Mapping[str, str]) -> Topology:
    """A copy of ``live`` with each tablet at its address by alias; tablets without one left out.

    What a simulated cluster publishes: its live topology, with the
    addresses its tablets' gRPC servers listen on.
    """
    return Topology(
        cell=live.cell,
        keyspaces={k: replace(v, shards=list(v.shards)) for k, v in live.keyspaces.items()},
        tablets=[
            replace(t, address=addresses[t.alias]) for t in live.tablets if t.alias in addresses
        ],
    )


def _serving_last(key: str) -> tuple[bool, str]:
    name = key.rsplit("/", 1)[-1]
    return (name.startswith("Srv"), key)


async def publish_topology(
    etcd_address: str,
    global_root: str,
    cell_root: str,
    topology_of: Callable[[], Topology],
    *,
    interval: float = PUBLISH_INTERVAL_SECONDS,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep etcd's records equal to ``topology_of()``, until cancelled.

    Reports started once every record has been written the first time.
    The cell's records go under ``cell_root`` on the same etcd. Must run
    inside :func:`~vsmux.transport.asyncio_loop`.
    """
    published: dict[str, bytes] = {}
    started = False
    backoff = _BACKOFF_START_SECONDS
    while True:
        try:
            async with open_etcd(etcd_address) as etcd:
                while True:
                    records = vitess_records(
                        topology_of(),
                        global_root=global_root,
                        cell_root=cell_root,
                        cell_address=etcd_address,
                    )
                    changed = [k for k in records if published.get(k) != records[k]]
                    for key in sorted(changed, key=_serving_last):
                        await etcd.put(key.encode(), records[key])
                        published[key] = records[key]
                    for key in [k for k in published if k not in records]:
                        await etcd.delete(key.encode())
                        del published[key]
                    if changed and started:
                        log.info("published %d changed topology records", len(changed))
                    backoff = _BACKOFF_START_SECONDS
                    if not started:
                        started = True
                        log.info(
                            "topology published to etcd at %s under %s and %s",
                            etcd_address,
                            global_root,
                            cell_root,
                        )
                        task_status.started()
                    await trio.sleep(interval)
        except VStreamError as exc:
            published.clear()  # written again in full once etcd is back
            log.warning("publishing the topology: %s; retrying in %.2fs", exc.message, backoff)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_SECONDS)
