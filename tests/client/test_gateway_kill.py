"""``vsmux serve`` and ``vsmux tail`` as real processes, both killed with SIGKILL.

The simulated cluster's tablets are served over loopback gRPC from the test
process. The gateway is a ``vsmux serve`` process reading a topology file
that points at them; tail is a ``vsmux tail`` process writing JSON lines to a
file (one file per run) and checkpointing to SQLite. While a workload
commits transactions, the gateway is SIGKILLed at a few random points and
restarted on the same port (tail reconnects by itself), and tail is
SIGKILLed once and restarted with the same checkpoint. Tail's stdout is a
pipe the test copies to the file; for the tail kill the test stops reading
until tail is blocked in the middle of writing a transaction, so the kill
usually falls between writing part of it and checkpointing it.

The lines of all tail runs, replayed, must equal the cluster's tables; no
transaction is lost; a run never prints a transaction twice (a gateway
restart repeats nothing); and a tail restart repeats only the transaction
the killed run wrote (in part) without checkpointing, and prints it again.

Real processes cannot run under a mock clock: waits poll the output files
and the checkpoint, each bounded by a deadline.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio
import trio_asyncio

from tests.client.e2e_kit import CLIENT, KS, SHARDS, caught_up, explain, replay, truth, units
from vsmux.client.checkpoint import CheckpointStore
from vsmux.proto import binlogdata
from vsmux.sources._simulated.cluster import SimulatedCluster
from vsmux.topology import dump_topology
from vsmux.transport import serve_cluster_tablets

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
LARGE_ROWS = (20, 60)
# How often a tail blocked on a small write is let go before killing it anyway.
BLOCK_ATTEMPTS = 20

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


async def stop_gateway(process: trio.Process) -> None:
    """Kill the gateway, then close the pipe its banner came through."""
    await kill(process)
    assert process.stdout is not None
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
        await stop_gateway(process)
        raise
    first = data.split(b"\n", 1)[0].decode()
    assert first.startswith("vsmux gateway listening on 127.0.0.1:"), first
    return process, int(first.rsplit(":", 1)[1])


class TailRun:
    """One ``vsmux tail`` process; the test copies its stdout pipe to ``out``.

    Copying the pipe (rather than letting tail write the file itself) lets
    the test stop reading: once the pipe is full, tail is blocked in the
    middle of writing a transaction, and a kill then lands after writing
    part of it and before checkpointing it.
    """

    def __init__(self, process: trio.Process, out: Path) -> None:
        self.process = process
        self.out = out
        self._flowing = trio.Event()
        self._flowing.set()

    async def copy_output(self) -> None:
        """Copy until tail's stdout closes (it exits or is killed)."""
        stdout = self.process.stdout
        assert stdout is not None
        async with stdout:
            await self._copy(stdout)

    async def _copy(self, stdout: trio.abc.ReceiveStream) -> None:
        with self.out.open("ab") as file:
            while True:
                await self._flowing.wait()
                chunk = await stdout.receive_some()
                if not chunk:
                    return
                file.write(chunk)
                file.flush()

    def pause(self) -> None:
        self._flowing = trio.Event()

    def resume(self) -> None:
        self._flowing.set()

    def blocked_write_size(self) -> int | None:
        """The size of the write tail is blocked in on its full stdout pipe: 0
        if it is not blocked there, None if /proc cannot tell."""
        proc = Path(f"/proc/{self.process.pid}")
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            waiting_in = (proc / "wchan").read_text().strip()
            syscall = (proc / "syscall").read_text().split()
        except OSError:
            return None
        if waiting_in in ("", "0"):
            # Running, or asleep where the kernel will not say.
            return None if state in ("S", "D") else 0
        if "pipe_write" not in waiting_in or len(syscall) < 4:
            return 0
        return int(syscall[3], 16)  # write(fd, buffer, count)


async def start_tail(port: int, checkpoint: Path, out: Path, log: Path) -> TailRun:
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
    await trio.Path(out).touch()
    with log.open("ab") as errors:
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=errors, start_new_session=True
        )
    return TailRun(process, out)


def complete_lines(path: Path) -> list[str]:
    """The file's whole lines; a kill can leave the last one cut in half."""
    return path.read_text().split("\n")[:-1]


async def wait_until(done: Callable[[], bool], what: str, tail: TailRun, log: Path) -> None:
    with trio.move_on_after(WAIT_SECONDS):
        while not done():
            if tail.process.returncode is not None:
                said = await trio.Path(log).read_text()
                raise AssertionError(f"tail exited waiting for {what}:\n{said}")
            await trio.sleep(POLL_SECONDS)
        return
    said = await trio.Path(log).read_text()
    raise AssertionError(f"timed out waiting for {what}; tail said:\n{said}")


async def block_mid_transaction(tail: TailRun, rng: random.Random, log: Path) -> None:
    """Stop reading tail's output until tail is blocked writing a transaction.

    A write of up to PIPE_BUF bytes to a pipe is atomic: blocked, none of it
    is in the pipe yet. A larger one has put what fitted into the pipe, so a
    kill now leaves that transaction partly written and not checkpointed.
    Small blocked writes are let through a few times to get a larger one.
    """
    for _ in range(BLOCK_ATTEMPTS):
        tail.pause()
        await wait_until(lambda: tail.blocked_write_size() != 0, "tail to block", tail, log)
        size = tail.blocked_write_size()
        if size is None or size > select.PIPE_BUF:
            return
        tail.resume()
        more = len(complete_lines(tail.out)) + rng.randint(1, 10)
        await wait_until(lambda n=more: len(complete_lines(tail.out)) >= n, "lines", tail, log)


def seqno(gtid: str) -> int:
    """N of ``<flavor>/<uuid>:1-N``."""
    return int(gtid.rsplit(":", 1)[1].rsplit("-", 1)[-1])


def checkpointed(position: binlogdata.VGtid | None) -> dict[str, int]:
    assert position is not None, "tail was killed before its first checkpoint"
    assert all(sg.gtid and not sg.table_p_ks for sg in position.shard_gtids), (
        f"tail was killed during a copy: checkpoint {position.to_dict()}"
    )
    return {sg.shard: seqno(sg.gtid) for sg in position.shard_gtids}


def keys(lines: list[str]) -> list[Key]:
    """One key per transaction printed: (shard, its gtid number) for live
    transactions, (shard, position) for copy batches (several share a gtid)."""
    return [(s, p) if snap else (s, n) for s, p, n, snap in units(lines)]


def rows_of(cluster: SimulatedCluster, shard: str, number: int) -> int:
    """How many row changes transaction ``number`` of ``shard`` made."""
    entry = next(cluster.shard_log(KS, shard).entries_after(number - 1))
    assert entry.seqno == number
    events = [binlogdata.VEvent.parse(raw) for part in entry.parts for raw in part.row_events]
    return sum(len(e.row_event.row_changes) for e in events if e.row_event is not None)


def lines_per_transaction(lines: list[str]) -> Counter[Key]:
    counts: Counter[Key] = Counter()
    for line in lines:
        change = json.loads(line)
        if not change["snapshot"]:
            [gtid] = [p["gtid"] for p in change["position"] if p["shard"] == change["shard"]]
            counts[(change["shard"], seqno(gtid))] += 1
    return counts


def check_delivery(
    runs: list[list[str]], checkpoints: list[dict[str, int]], cluster: SimulatedCluster
) -> None:
    """``checkpoints[i]`` is the checkpoint run ``i`` left when it was killed."""
    # What each killed run printed, in whole or in part, after its checkpoint.
    unchecked = [
        {(s, n) for s, n in keys(run) if isinstance(n, int) and n > stored[s]}
        for run, stored in zip(runs, checkpoints, strict=False)
    ]
    seen: set[Key] = set()
    for i, run in enumerate(runs):
        mine = keys(run)
        assert len(set(mine)) == len(mine), f"run {i} printed a transaction twice"
        # Only an unchecked transaction may be cut short; every other one is whole.
        cut_short_ok = unchecked[i] if i < len(unchecked) else set()
        for (shard, number), count in lines_per_transaction(run).items():
            if (shard, number) not in cut_short_ok:
                want = rows_of(cluster, shard, number)
                assert count == want, f"run {i}: {count} lines of {want} for {shard} #{number}"
        repeated = {k for k in mine if k in seen}
        again: set[Key] = set()
        if i > 0:
            again = unchecked[i - 1]
            assert len(again) <= 1, f"run {i - 1} left {again} unchecked"
            # The next run starts exactly at the first unchecked transaction.
            assert again <= set(mine), f"run {i} did not print {again} again"
        assert repeated == again, f"run {i} repeated {repeated - again}"
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
    # Many transactions of more rows than fit in one atomic pipe write, so
    # tail's write blocked on a full pipe is usually part of a transaction.
    cluster = SimulatedCluster.build(
        {KS: SHARDS}, seed=9, large_probability=0.2, large_rows=LARGE_ROWS
    )
    cluster.apply_random_transactions(30, KS)
    rng = random.Random(17)
    # Tail is killed between two gateway kills, so both of its runs see one.
    actions = ["gateway"] * GATEWAY_KILLS
    actions.insert(rng.randint(1, GATEWAY_KILLS - 1), "tail")
    topology_file = tmp_path / "topology.toml"
    checkpoint = tmp_path / "tail.db"
    gateway_log = tmp_path / "gateway.log"
    tail_log = tmp_path / "tail.log"
    tails: list[TailRun] = []
    gateways: list[trio.Process] = []
    checkpoints: list[dict[str, int]] = []

    async def new_tail(port: int, nursery: trio.Nursery) -> TailRun:
        run = await start_tail(port, checkpoint, tmp_path / f"tail-{len(tails)}.jsonl", tail_log)
        tails.append(run)
        nursery.start_soon(run.copy_output)
        return run

    async with (
        trio_asyncio.open_loop(),
        serve_cluster_tablets(cluster, "127.0.0.1") as topology,
        trio.open_nursery() as nursery,
    ):
        topology_file.write_text(dump_topology(topology))
        try:
            with CheckpointStore(checkpoint) as store, trio.fail_after(120):
                gateway, port = await start_gateway(topology_file, 0, gateway_log)
                gateways.append(gateway)
                tail = await new_tail(port, nursery)
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
                        out = tail.out
                        target = len(complete_lines(out)) + rng.randint(5, 60)
                        await wait_until(
                            lambda: len(complete_lines(out)) >= target,  # noqa: B023
                            f"{target} lines before killing the {action}",
                            tail,
                            tail_log,
                        )
                        if action == "gateway":
                            await stop_gateway(gateway)
                            gateway, _ = await start_gateway(topology_file, port, gateway_log)
                            gateways.append(gateway)
                        else:
                            await block_mid_transaction(tail, rng, tail_log)
                            await kill(tail.process)
                            tail.resume()
                            checkpoints.append(checkpointed(store.load(CLIENT)))
                            tail = await new_tail(port, nursery)
                    workload.cancel_scope.cancel()
                await wait_until(
                    lambda: current(store.load(CLIENT)), "the last transaction", tail, tail_log
                )
        finally:
            for run in tails:
                await kill(run.process)
                run.resume()
            for process in gateways:
                await stop_gateway(process)
    notices = tail_log.read_text()
    assert notices.count("reconnecting in") >= GATEWAY_KILLS, notices
    assert "resuming client id" in notices, notices
    runs = [complete_lines(run.out) for run in tails]
    assert len(runs) == 2 and all(runs)
    got, want = replay([line for run in runs for line in run]), truth(cluster)
    assert got == want, explain(runs, got, want)
    check_delivery(runs, checkpoints, cluster)
    assert not any(json.loads(line)["snapshot"] for line in runs[1])
