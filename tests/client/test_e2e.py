"""End to end: simulated cluster -> gateway server -> gRPC -> tail -> JSON lines.

The JSON output, replayed into tables, must equal the cluster's ground truth;
crashes of tail (between writing a transaction and checkpointing it, at
random points) and a gateway restart must lose no transaction and repeat at
most the one transaction a crash left unchecked.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_asyncio

from vsmux.client.checkpoint import CheckpointStore
from vsmux.client.request import StreamOptions
from vsmux.client.retry import Backoff
from vsmux.client.rows import decode_value
from vsmux.client.stream import grpc_connector
from vsmux.client.tail import TailConfig, run_tail
from vsmux.mux import run_vstream
from vsmux.mux.api import Gateway
from vsmux.proto import binlogdata
from vsmux.server.app import open_gateway_server
from vsmux.server.tables import StaticTableCatalog
from vsmux.sources.simulated.cluster import SimulatedCluster

from .fakes import Crash, CrashingOutput, CrashingStore, WatchedIO

KS = "commerce"
SHARDS = ["-80", "80-"]
PK = {"customer": ("customer_id",), "corder": ("order_id",), "product": ("sku",)}
CLIENT = "e2e"
Tables = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


@pytest.fixture
async def aio_loop() -> AsyncIterator[None]:
    async with trio_asyncio.open_loop():
        yield


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


async def tail_until_caught_up(
    port: int,
    cluster: SimulatedCluster,
    store: CheckpointStore,
    out: WatchedIO,
    err: io.StringIO | None = None,
) -> None:
    """Run tail (copy first, unless checkpointed) until its checkpoint is current.

    Raises Crash if the store was told to crash.
    """
    config = TailConfig(stream=StreamOptions(keyspace=KS, start="copy"), client_id=CLIENT)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def tail() -> None:
                errors = err or io.StringIO()
                status = await run_tail(
                    config,
                    grpc_connector(f"127.0.0.1:{port}"),
                    out,
                    errors,
                    store=store,
                    backoff=Backoff(base=0.02, cap=0.2),
                )
                raise AssertionError(f"tail ended early ({status}): {errors.getvalue()}")

            nursery.start_soon(tail)
            while not caught_up(store.load(CLIENT), cluster):
                # Checkpoints follow writes; units without lines (DDL, OTHER)
                # are checked at least every 0.1 s.
                with trio.move_on_after(0.1):
                    await out.changed.wait()
            nursery.cancel_scope.cancel()


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


async def test_copy_then_stream_replays_to_the_cluster_tables(
    aio_loop: None, tmp_path: Path
) -> None:
    cluster = SimulatedCluster.build({KS: SHARDS}, seed=1)
    cluster.apply_random_transactions(60, KS)
    out = WatchedIO()
    with CheckpointStore(tmp_path / "cp.db") as store:
        async with gateway(cluster) as port:
            await tail_until_caught_up(port, cluster, store, out)
            copied = out.getvalue().splitlines()
            assert replay(copied) == truth(cluster)
            assert all(json.loads(line)["snapshot"] for line in copied)
            # Now live changes, resumed from the checkpoint.
            cluster.apply_random_transactions(80, KS)
            await tail_until_caught_up(port, cluster, store, out)
    lines = out.getvalue().splitlines()
    assert len(lines) > len(copied)
    assert replay(lines) == truth(cluster)
    check_delivery([lines], cluster)


async def crash_rounds(
    cluster: SimulatedCluster, path: Path, stores: list[CrashingStore], outs: list[WatchedIO]
) -> list[list[str]]:
    """One tail run per (store, out) pair, each until it crashes or catches up,
    with more transactions committed between runs; then a clean final run."""
    rng = random.Random(len(stores))
    runs: list[list[str]] = []
    async with gateway(cluster) as port:
        for store, out in zip(stores, outs, strict=True):
            try:
                await tail_until_caught_up(port, cluster, store, out)
            except* Crash:
                pass
            finally:
                store.close()
            runs.append(out.getvalue().splitlines())
            cluster.apply_random_transactions(rng.randint(5, 25), KS)
        final = WatchedIO()
        with CheckpointStore(path) as store:
            await tail_until_caught_up(port, cluster, store, final)
        runs.append(final.getvalue().splitlines())
    return runs


async def test_random_crashes_between_write_and_checkpoint(aio_loop: None, tmp_path: Path) -> None:
    cluster = SimulatedCluster.build({KS: SHARDS}, seed=2)
    cluster.apply_random_transactions(40, KS)
    path = tmp_path / "cp.db"
    rng = random.Random(11)
    # The copy completes first (see the README on crashes during a copy); then
    # each run dies after writing a random transaction, before checkpointing it.
    stores = [CrashingStore(path, None)] + [
        CrashingStore(path, crash_at=rng.randint(1, 12)) for _ in range(5)
    ]
    runs = await crash_rounds(cluster, path, stores, [WatchedIO() for _ in stores])
    assert sum(1 for store in stores if store.saves == store.crash_at) >= 3
    assert replay([line for run in runs for line in run]) == truth(cluster)
    check_delivery(runs, cluster)


async def test_random_crashes_before_write_during_copy(aio_loop: None, tmp_path: Path) -> None:
    cluster = SimulatedCluster.build({KS: SHARDS}, seed=4)
    cluster.apply_random_transactions(60, KS)
    path = tmp_path / "cp.db"
    rng = random.Random(5)
    outs = [CrashingOutput(rng.randint(1, 4)) for _ in range(5)]
    stores = [CrashingStore(path, None) for _ in outs]
    runs = await crash_rounds(cluster, path, stores, outs)  # type: ignore[arg-type]
    assert sum(1 for out in outs if out.writes == out.crash_at) >= 3
    assert replay([line for run in runs for line in run]) == truth(cluster)
    check_delivery(runs, cluster)


async def test_gateway_killed_mid_stream(aio_loop: None, tmp_path: Path) -> None:
    cluster = SimulatedCluster.build({KS: SHARDS}, seed=3)
    cluster.apply_random_transactions(40, KS)
    out = WatchedIO()
    err = io.StringIO()
    config = TailConfig(stream=StreamOptions(keyspace=KS, start="copy"), client_id=CLIENT)
    with CheckpointStore(tmp_path / "cp.db") as store, trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with gateway(cluster) as port:
                connect = grpc_connector(f"127.0.0.1:{port}")
                backoff = Backoff(base=0.02, cap=0.2)

                async def tail() -> None:
                    status = await run_tail(config, connect, out, err, store=store, backoff=backoff)
                    raise AssertionError(f"tail ended early ({status}): {err.getvalue()}")

                nursery.start_soon(tail)
                # Kill the gateway while transactions are flowing.
                async with trio.open_nursery() as workload:
                    workload.start_soon(lambda: cluster.run_workload(400.0, keyspace=KS))
                    for _ in range(5):
                        await out.changed.wait()
                    workload.cancel_scope.cancel()
            # Gateway down: tail retries; more transactions commit meanwhile.
            cluster.apply_random_transactions(40, KS)
            async with gateway(cluster, port=port):
                while not caught_up(store.load(CLIENT), cluster):
                    with trio.move_on_after(0.1):
                        await out.changed.wait()
                nursery.cancel_scope.cancel()
    assert "server shutting down" in err.getvalue()
    lines = out.getvalue().splitlines()
    assert replay(lines) == truth(cluster)
    check_delivery([lines], cluster)
