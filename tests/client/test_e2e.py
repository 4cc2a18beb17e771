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
from functools import partial
from pathlib import Path

import trio

from tests.client.e2e_kit import (
    CLIENT,
    KS,
    SHARDS,
    caught_up,
    check_delivery,
    gateway,
    replay,
    truth,
)
from tests.client.fakes import Crash, CrashingOutput, CrashingStore, WatchedIO
from vsmux.client.checkpoint import CheckpointStore
from vsmux.client.request import StreamOptions
from vsmux.client.retry import Backoff
from vsmux.client.tail import TailConfig, run_tail
from vsmux.sources._simulated.cluster import SimulatedCluster
from vsmux.transport import grpc_connector


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
                    workload.start_soon(lambda: cluster.run_workload(150.0, keyspace=KS))
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


class CuttingProxy:
    """A loopback TCP proxy whose connections can all be cut at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._cut = trio.Event()
        self.connections = 0
        self.connected = trio.Event()

    def cut(self) -> None:
        self._cut.set()
        self._cut = trio.Event()

    async def handle(self, client: trio.SocketStream) -> None:
        cut = self._cut
        self.connections += 1
        self.connected.set()
        self.connected = trio.Event()
        server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        async with client, server, trio.open_nursery() as nursery:

            async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                while data := await source.receive_some():
                    await sink.send_all(data)
                nursery.cancel_scope.cancel()

            nursery.start_soon(pump, client, server)
            nursery.start_soon(pump, server, client)
            await cut.wait()
            nursery.cancel_scope.cancel()


async def test_dropped_connections_mid_stream(aio_loop: None, tmp_path: Path) -> None:
    cluster = SimulatedCluster.build({KS: SHARDS}, seed=6)
    cluster.apply_random_transactions(40, KS)
    out = WatchedIO()
    err = io.StringIO()
    config = TailConfig(stream=StreamOptions(keyspace=KS, start="copy"), client_id=CLIENT)
    with CheckpointStore(tmp_path / "cp.db") as store, trio.fail_after(60):
        async with gateway(cluster) as port, trio.open_nursery() as nursery:
            proxy = CuttingProxy(port)
            serve = partial(trio.serve_tcp, proxy.handle, 0, host="127.0.0.1")
            [listener] = await nursery.start(serve)
            address = f"127.0.0.1:{listener.socket.getsockname()[1]}"

            async def tail() -> None:
                status = await run_tail(
                    config,
                    grpc_connector(address),
                    out,
                    err,
                    store=store,
                    backoff=Backoff(base=0.02, cap=0.2),
                )
                raise AssertionError(f"tail ended early ({status}): {err.getvalue()}")

            nursery.start_soon(tail)
            async with trio.open_nursery() as workload:
                workload.start_soon(lambda: cluster.run_workload(150.0, keyspace=KS))
                for _ in range(3):
                    for _ in range(4):
                        await out.changed.wait()
                    before = proxy.connections
                    proxy.cut()
                    while proxy.connections == before:
                        await proxy.connected.wait()
                workload.cancel_scope.cancel()
            while not caught_up(store.load(CLIENT), cluster):
                with trio.move_on_after(0.1):
                    await out.changed.wait()
            nursery.cancel_scope.cancel()
    assert proxy.connections >= 4
    assert err.getvalue().count("failed or dropped") >= 3
    lines = out.getvalue().splitlines()
    assert replay(lines) == truth(cluster)
    check_delivery([lines], cluster)
