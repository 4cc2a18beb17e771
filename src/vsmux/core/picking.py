"""Which tablets may serve a shard stream, in which order, and whether one is healthy.

Pure functions over the topology and health reports; the Trio picker in
:mod:`vsmux.mux.picking_wait` probes tablets and waits.

Cell rules (``docs/vitess.md`` §6.1), as vtgate's tablet picker applies them:

- PRIMARY streams go to the shard's primary wherever it lives: there is only
  one, and the requested cells do not apply.
- A requested cell may be the name of a cell *alias* (the topology's
  ``cells_aliases``: a named group of cells); it stands for the alias's
  cells, in the alias's order. A name that is neither a cell with tablets
  nor an alias simply finds no tablets.
- ``preferlocalwithalias`` (the default) ranks tablets in three tiers: the
  gateway's own cell, whether or not the request lists it; then the other
  cells of the alias the gateway's cell belongs to, whether or not the
  request lists them (they count as local too); then the remaining
  requested cells, in the order given.
- ``onlyspecified`` uses the requested cells only (aliases expanded), in the
  order given.

Tablets within one tier keep the topology order, or are shuffled when a
random source is given. The local-alias tier is shuffled as one group, as
vtgate does, so streams spread over all of the alias's cells; each other
requested cell is its own tier, so the order the client gave is kept. With
no aliases in the topology this is exactly the local cell first, then the
requested cells in order.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from vsmux.proto import query, topodata
from vsmux.topology import TabletInfo, Topology

__all__ = ["candidates", "cell_tiers", "expand_cells", "health_problem", "type_name"]


def expand_cells(names: list[str], aliases: Mapping[str, list[str]]) -> list[str]:
    """``names`` with every alias name replaced by its cells; each cell once, first place kept."""
    expanded: list[str] = []
    for name in names:
        expanded.extend(aliases.get(name, [name]))
    return list(dict.fromkeys(expanded))


def cell_tiers(
    cells: list[str],
    cell_preference: str,
    local_cell: str,
    aliases: Mapping[str, list[str]],
) -> list[list[str]]:
    """The cells to search, best tier first; tablets of one tier are equally good.

    ``cells`` are the request's cells (alias names allowed); ``aliases`` maps
    an alias name to its cells. Every cell appears in one tier at most.
    """
    requested = expand_cells(cells, aliases)
    if cell_preference != "preferlocalwithalias" or not local_cell:
        return [[cell] for cell in requested]
    tiers = [[local_cell]]
    # The other cells of the local cell's alias are local too, requested or not.
    same_alias = next((group for group in aliases.values() if local_cell in group), [])
    near = [cell for cell in dict.fromkeys(same_alias) if cell != local_cell]
    if near:
        tiers.append(near)
    placed = {local_cell, *near}
    tiers.extend([cell] for cell in requested if cell not in placed)
    return tiers


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

    Tablets whose tablet alias (``zone1-0000000101``) is in ``ignore`` are
    left out. The order follows :func:`cell_tiers` over the topology's cell
    aliases. Within one tier the topology order is kept, or shuffled with
    ``rng`` when given, so that many streams spread over the tier's replicas
    instead of all taking the first.
    """
    tablets = [
        t
        for t in topology.tablets_for(keyspace, shard)
        if t.tablet_type == tablet_type and t.alias not in ignore
    ]
    if tablet_type == topodata.TabletType.PRIMARY:
        return tablets
    ranked: list[TabletInfo] = []
    for tier in cell_tiers(cells, cell_preference, local_cell, topology.cells_aliases):
        # Cell by cell, so that without shuffling a tier keeps its cells' order.
        group = [t for cell in tier for t in tablets if t.cell == cell]
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
