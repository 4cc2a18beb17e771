"""``vsmux serve`` and ``vsmux tail`` as real processes, both killed with SIGKILL.

The simulated cluster's tablets are served over loopback gRPC from the test
process. The gateway is a ``vsmux serve`` process reading a topology file
that points at them; tail is a ``vsmux tail`` process writing JSON lines to a
file (one file per run) and checkpointing to SQLite. While a workload
commits transactions, the gateway is SIGKILLed at a few random points and
restarted on the same port (tail reconnects by itself), and tail is
SIGKILLed once and restarted with the same checkpoint.

The lines of all tail runs, replayed, must equal the cluster's tables; no
transaction is lost; a run never prints a transaction twice (a gateway
restart repeats nothing); and a tail restart repeats only the transaction
the killed run wrote without checkpointing, and always repeats it.

Real processes cannot run under a mock clock: waits poll the output files
and the checkpoint, each bounded by a deadline.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio
import trio_asyncio

from vsmux.cli.cluster import serve_cluster_tablets
from vsmux.client.checkpoint import CheckpointStore
from vsmux.proto import binlogdata
from vsmux.sources.simulated.cluster import SimulatedCluster
from vsmux.topology.toml_loader import dump_topology

from .e2e_kit import CLIENT, KS, SHARDS, caught_up, explain, replay, truth, units

pytestmark = pytest.mark.slow

# How often output files and the checkpoint are looked at while waiting.
POLL_SECONDS = 0.05
# The longest any single wait may take (a process start on a loaded machine,
# tail's reconnect backoff after a gateway restart, catching up at the end).
WAIT_SECONDS = 30.0
# Workload: fast enough that every kill lands while transactions commit,
# bounded so that a stuck test cannot grow the cluster without end.
RATE_TPS = 80.0
MAX_TRANSACTIONS = 3000
GATEWAY_KILLS = 3

Key = tuple[str, int] | tuple[str, str]


def vsmux(*args: str) -> list[str]:
    return [sys.executable, "-m", "vsmux", *args]


async def kill(process: trio.Process) -> None:
    """SIGKILL the process's group (if still running), then reap it."""
    with trio.move_on_after(10) as scope:
        scope.shield = True
        if process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


async def start_gateway(topology: Path, port: int, log: Path) -> tuple[trio.Process, int]:
    """``vsmux serve`` on 127.0.0.1:``port`` (0: any); returns it and its port."""
    command = vsmux(
        "serve", "--topology", str(topology), "--listen", f"127.0.0.1:{port}", "--log-level", "INFO"
    )
    with log.open("ab") as errors:
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=errors, start_new_session=True
        )
    assert process.stdout is not None
    data = b""
    try:
        with trio.fail_after(WAIT_SECONDS):
            while b"\n" not in data:
                chunk = await process.stdout.receive_some(1024)
                if not chunk:
                    said = await trio.Path(log).read_text()
                    raise AssertionError(f"vsmux serve exited before listening:\n{said}")
                data += chunk
    except BaseException:
        await kill(process)
        raise
    first = data.split(b"\n", 1)[0].decode()
    assert first.startswith("vsmux gateway listening on 127.0.0.1:"), first
    return process, int(first.rsplit(":", 1)[1])


async def start_tail(port: int, checkpoint: Path, out: Path, log: Path) -> trio.Process:
    command = vsmux(
        "tail",
        "--server",
        f"127.0.0.1:{port}",
        "--keyspace",
        KS,
        "--from",
        "copy",
        "--checkpoint",
        str(checkpoint),
        "--client-id",
        CLIENT,
        "--format",
        "json",
    )
    with out.open("wb") as stdout, log.open("ab") as errors:
        return await trio.lowlevel.open_process(
            command, stdout=stdout, stderr=errors, start_new_session=True
        )


def complete_lines(path: Path) -> list[str]:
    """The file's whole lines; a kill can leave the last one cut in half."""
    return path.read_text().split("\n")[:-1]


async def wait_until(done: Callable[[], bool], what: str, tail: trio.Process, log: Path) -> None:
    with trio.move_on_after(WAIT_SECONDS):
        while not done():
            if tail.returncode is not None:
                said = await trio.Path(log).read_text()
                raise AssertionError(f"tail exited waiting for {what}:\n{said}")
            await trio.sleep(POLL_SECONDS)
        return
    said = await trio.Path(log).read_text()
    raise AssertionError(f"timed out waiting for {what}; tail said:\n{said}")


def seqno(gtid: str) -> int:
    """N of ``<flavor>/<uuid>:1-N``."""
    return int(gtid.rsplit(":", 1)[1].rsplit("-", 1)[-1])


def checkpointed(position: binlogdata.VGtid | None) -> dict[str, int]:
    assert position is not None, "tail was killed before its first checkpoint"
    return {sg.shard: seqno(sg.gtid) for sg in position.shard_gtids}


def keys(lines: list[str]) -> list[Key]:
    """One key per transaction printed: (shard, its gtid number) for live
    transactions, (shard, position) for copy batches (several share a gtid)."""
    return [(s, p) if snap else (s, n) for s, p, n, snap in units(lines)]


def check_delivery(
    runs: list[list[str]], checkpoints: list[dict[str, int]], cluster: SimulatedCluster
) -> None:
    """``checkpoints[i]`` is the checkpoint run ``i`` left when it was killed."""
    seen: set[Key] = set()
    for i, run in enumerate(runs):
        mine = keys(run)
        assert len(set(mine)) == len(mine), f"run {i} printed a transaction twice"
        repeated = {k for k in mine if k in seen}
        unchecked: set[Key] = set()
        if i > 0:
            stored = checkpoints[i - 1]
            unchecked = {
                (s, n) for s, n in keys(runs[i - 1]) if isinstance(n, int) and n > stored[s]
            }
            assert len(unchecked) <= 1, f"run {i - 1} left {unchecked} unchecked"
            # The next run starts exactly at the first unchecked transaction.
            assert unchecked <= set(mine), f"run {i} did not print {unchecked} again"
        assert repeated == unchecked, f"run {i} repeated {repeated - unchecked}"
        seen |= set(mine)
    everything = units([line for run in runs for line in run])
    for shard in SHARDS:
        # After the copy, every transaction with rows is printed as a unit of its own.
        copied = max((n for s, _, n, snap in everything if s == shard and snap), default=0)
        live = {n for s, n in seen if s == shard and isinstance(n, int) and n > copied}
        expected = {
            entry.seqno
            for entry in cluster.shard_log(KS, shard).entries_after(copied)
            if entry.parts
        }
        assert expected and live == expected, f"shard {shard}: lost {sorted(expected - live)}"


async def test_gateway_and_tail_sigkilled_lose_nothing(tmp_path: Path) -> None:
    cluster = SimulatedCluster.build({KS: SHARDS}, seed=9)
    cluster.apply_random_transactions(30, KS)
    rng = random.Random(17)
    # Tail is killed between two gateway kills, so both of its runs see one.
    actions = ["gateway"] * GATEWAY_KILLS
    actions.insert(rng.randint(1, GATEWAY_KILLS - 1), "tail")
    topology_file = tmp_path / "topology.toml"
    checkpoint = tmp_path / "tail.db"
    gateway_log = tmp_path / "gateway.log"
    tail_log = tmp_path / "tail.log"
    outputs = [tmp_path / "tail-0.jsonl"]
    checkpoints: list[dict[str, int]] = []
    processes: list[trio.Process] = []
    async with (
        trio_asyncio.open_loop(),
        serve_cluster_tablets(cluster, "127.0.0.1") as topology,
    ):
        topology_file.write_text(dump_topology(topology))
        try:
            with CheckpointStore(checkpoint) as store, trio.fail_after(120):
                gateway, port = await start_gateway(topology_file, 0, gateway_log)
                processes.append(gateway)
                tail = await start_tail(port, checkpoint, outputs[-1], tail_log)
                processes.append(tail)
                # The copy first, undisturbed (see the README on crashes during a copy).
                current = partial(caught_up, cluster=cluster)
                await wait_until(lambda: current(store.load(CLIENT)), "the copy", tail, tail_log)
                async with trio.open_nursery() as workload:
                    workload.start_soon(
                        partial(
                            cluster.run_workload,
                            RATE_TPS,
                            keyspace=KS,
                            max_transactions=MAX_TRANSACTIONS,
                        )
                    )
                    for action in actions:
                        out = outputs[-1]
                        target = len(complete_lines(out)) + rng.randint(5, 60)
                        await wait_until(
                            lambda: len(complete_lines(out)) >= target,  # noqa: B023
                            f"{target} lines before killing the {action}",
                            tail,
                            tail_log,
                        )
                        if action == "gateway":
                            await kill(gateway)
                            gateway, _ = await start_gateway(topology_file, port, gateway_log)
                            processes.append(gateway)
                        else:
                            await kill(tail)
                            checkpoints.append(checkpointed(store.load(CLIENT)))
                            outputs.append(tmp_path / f"tail-{len(outputs)}.jsonl")
                            tail = await start_tail(port, checkpoint, outputs[-1], tail_log)
                            processes.append(tail)
                    workload.cancel_scope.cancel()
                await wait_until(
                    lambda: current(store.load(CLIENT)), "the last transaction", tail, tail_log
                )
        finally:
            for process in processes:
                await kill(process)
    notices = tail_log.read_text()
    assert notices.count("reconnecting in") >= GATEWAY_KILLS, notices
    assert "resuming client id" in notices, notices
    runs = [complete_lines(out) for out in outputs]
    assert len(runs) == 2 and all(runs)
    got, want = replay([line for run in runs for line in run]), truth(cluster)
    assert got == want, explain(runs, got, want)
    check_delivery(runs, checkpoints, cluster)
    assert not any(json.loads(line)["snapshot"] for line in runs[1])
