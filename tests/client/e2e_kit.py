"""Shared pieces of the end-to-end tests: gateway, ground truth, replay, checks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from vsmux.client.rows import decode_value
from vsmux.mux import run_vstream
from vsmux.mux.api import Gateway
from vsmux.proto import binlogdata
from vsmux.server.app import open_gateway_server
from vsmux.server.tables import StaticTableCatalog
from vsmux.sources._simulated.cluster import SimulatedCluster

KS = "commerce"
SHARDS = ["-80", "80-"]
PK = {"customer": ("customer_id",), "corder": ("order_id",), "product": ("sku",)}
CLIENT = "e2e"
Tables = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


@asynccontextmanager
async def gateway(cluster: SimulatedCluster, port: int = 0) -> AsyncIterator[int]:
    gw = Gateway(topology=cluster.topology, sources=cluster)
    async with open_gateway_server(gw, run_vstream, StaticTableCatalog(), port=port) as server:
        yield server.port


def truth(cluster: SimulatedCluster) -> Tables:
    """The cluster's tables, decoded the way tail decodes rows."""
    out: Tables = {}
    for table, rows in cluster.table_contents(KS).items():
        columns = cluster.shard_log(KS, SHARDS[0]).schemas[table].columns
        types = {c.name: c.type for c in columns}
        out[table] = {}
        for row in rows.values():
            decoded = {c: None if v is None else decode_value(types[c], v) for c, v in row.items()}
            out[table][tuple(decoded[c] for c in PK[table])] = decoded
    return out


def replay(lines: list[str]) -> Tables:
    tables: Tables = {t: {} for t in PK}
    for line in lines:
        change = json.loads(line)
        table, data = change["table"], change["data"]
        key = tuple(data[c] for c in PK[table])
        if change["op"] == "delete":
            tables[table].pop(key, None)
            continue
        if change["op"] == "update":
            old_key = tuple(change["old"].get(c, data[c]) for c in PK[table])
            tables[table].pop(old_key, None)
        tables[table][key] = data
    return tables


def caught_up(position: binlogdata.VGtid | None, cluster: SimulatedCluster) -> bool:
    if position is None:
        return False
    have = {sg.shard: (sg.gtid, bool(sg.table_p_ks)) for sg in position.shard_gtids}
    return have == {s: (cluster.position(KS, s), False) for s in SHARDS}


Unit = tuple[str, str, int, bool]


def units(lines: list[str]) -> list[Unit]:
    """(shard, position, gtid seqno on that shard, snapshot) per unit, in order."""
    found: list[Unit] = []
    for line in lines:
        change = json.loads(line)
        if change["index"] == 0:
            position = json.dumps(change["position"])
            [gtid] = [p["gtid"] for p in change["position"] if p["shard"] == change["shard"]]
            number = int(gtid.rsplit("-", 1)[1])
            found.append((change["shard"], position, number, change["snapshot"]))
    return found


def check_delivery(runs: list[list[str]], cluster: SimulatedCluster) -> None:
    """No unit twice except the last of a crashed run first in the next; none lost."""
    seen: list[Unit] = []
    for run in runs:
        mine = units(run)
        assert len(set(mine)) == len(mine), "a run printed a unit twice"
        repeated = [u for u in mine if u in seen]
        allowed = [seen[-1]] if seen else []
        assert repeated in ([], allowed), f"replayed more than the last unit: {repeated}"
        if repeated:
            assert mine[0] == seen[-1]
        seen.extend(u for u in mine if u not in repeated)
    for shard in SHARDS:
        # After the copy, every transaction with rows is a unit of its own.
        numbers = [n for s, _, n, _ in seen if s == shard]
        copied = max((n for s, _, n, snap in seen if s == shard and snap), default=min(numbers))
        live = {n for n in numbers if n > copied}
        expected = {
            entry.seqno
            for entry in cluster.shard_log(KS, shard).entries_after(copied)
            if entry.parts
        }
        assert live == expected, f"shard {shard}: lost {sorted(expected - live)}"


def explain(runs: list[list[str]], got: Tables, want: Tables, limit: int = 5) -> str:
    """The first differing rows and every line that touched them, per run."""
    out: list[str] = []
    for table in want:
        for key in sorted(
            set(got[table]) ^ set(want[table])
            | {k for k in set(got[table]) & set(want[table]) if got[table][k] != want[table][k]},
            key=repr,
        )[:limit]:
            out.append(f"{table} {key}: got {got[table].get(key)} want {want[table].get(key)}")
            for i, run in enumerate(runs):
                for line in run:
                    change = json.loads(line)
                    if change["table"] == table and key == tuple(
                        change["data"][c] for c in PK[table]
                    ):
                        shard_pos = [
                            (p["shard"], p["gtid"][-8:], len(p["table_p_ks"]))
                            for p in change["position"]
                        ]
                        out.append(
                            f"  run {i} {change['shard']} {change['op']} #{change['index']} "
                            f"snap={change['snapshot']} {shard_pos} old={change.get('old')}"
                        )
    return "\n".join(out)
