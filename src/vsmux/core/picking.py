"""Which tablets may serve a shard stream, in which order, and whether one is healthy.

Pure functions over the topology and health reports; the Trio picker in
:mod:`vsmux.mux.picking_wait` probes tablets and waits.

Cell rules (``docs/vitess.md`` §6.1):

- PRIMARY streams go to the shard's primary wherever it lives: there is only
  one, and the requested cells do not apply.
- Other types: with ``preferlocalwithalias`` (the default) the gateway's
  own cell comes first, whether or not the request lists it, then the other
  requested cells in the order given, as vtgate's tablet picker does; with
  ``onlyspecified`` only the requested cells are used, in the order given.
  Vitess cell *aliases* (named groups of cells that also count as local)
  are not modelled: the topology has no alias groups, so every requested
  cell is simply in scope.
"""

from __future__ import annotations

import random

from vsmux.proto import query, topodata
from vsmux.topology import TabletInfo, Topology

__all__ = ["candidates", "health_problem", "type_name"]


def candidates(
    topology: Topology,
    keyspace: str,
    shard: str,
    tablet_type: topodata.TabletType,
    cells: list[str],
    cell_preference: str,
    local_cell: str,
    ignore: frozenset[str],
    *,
    rng: random.Random | None = None,
) -> list[TabletInfo]:
    """Tablets of ``keyspace/shard`` that may serve ``tablet_type``, best first.

    Tablets whose alias is in ``ignore`` are left out. Within one cell the
    topology order is kept, or shuffled with ``rng`` when given, so that many
    streams spread over a cell's replicas instead of all taking the first.
    """
    tablets = [
        t
        for t in topology.tablets_for(keyspace, shard)
        if t.tablet_type == tablet_type and t.alias not in ignore
    ]
    if tablet_type == topodata.TabletType.PRIMARY:
        return tablets
    order = list(dict.fromkeys(cells))  # requested cells, duplicates dropped
    if cell_preference == "preferlocalwithalias" and local_cell:
        # In scope even when not requested (vtgate adds its own cell too).
        if local_cell in order:
            order.remove(local_cell)
        order.insert(0, local_cell)
    ranked: list[TabletInfo] = []
    for cell in order:
        group = [t for t in tablets if t.cell == cell]
        if rng is not None:
            rng.shuffle(group)
        ranked.extend(group)
    return ranked


def health_problem(
    resp: query.StreamHealthResponse, tablet_type: topodata.TabletType, max_lag: float
) -> str | None:
    """Why a tablet reporting ``resp`` must not serve a ``tablet_type`` stream, or None.

    The reason reads after the tablet alias: "tablet zone1-0000000101 <reason>".
    """
    stats = resp.realtime_stats
    if resp.target is None or stats is None:
        return "sent a health report without target or stats"
    if resp.target.tablet_type != tablet_type:
        return (
            f"changed tablet type from {type_name(tablet_type)} "
            f"to {type_name(resp.target.tablet_type)}"
        )
    if stats.health_error:
        return f"is no longer healthy: {stats.health_error}"
    if not resp.serving:
        return "is not serving"
    # A primary reports no replication lag of its own; only replicas can fall behind.
    if tablet_type != topodata.TabletType.PRIMARY and stats.replication_lag_seconds > max_lag:
        return f"has replication lag {stats.replication_lag_seconds}s, above the {max_lag:g}s limit"
    return None


def type_name(tablet_type: topodata.TabletType | int) -> str:
    """``REPLICA`` for a known type, the number for an unknown one."""
    try:
        name = topodata.TabletType(tablet_type).name
    except ValueError:
        name = None
    # Unknown numbers may come back as a nameless pseudo-member rather than an error.
    return name or str(int(tablet_type))
