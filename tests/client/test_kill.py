"""``vsmux tail`` as a real process, killed with SIGKILL at random points.

The gateway and the simulated cluster run in the test process; each tail run
is a subprocess writing JSON lines to a pipe and checkpointing to one SQLite
file. Each run is killed after a random number of lines while transactions
commit; the next run resumes from the checkpoint. The lines of all runs
(minus a line cut in half by the kill), replayed, must equal the cluster's
tables, with no transaction lost and at most one repeated per kill.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.client.e2e_kit import (
    CLIENT,
    KS,
    SHARDS,
    caught_up,
    check_delivery,
    explain,
    gateway,
    replay,
    truth,
)
from vsmux.client.checkpoint import CheckpointStore
from vsmux.sources._simulated.cluster import SimulatedCluster

pytestmark = pytest.mark.slow


async def tail_process(
    port: int,
    checkpoint: Path,
    stderr: Path,
    cluster: SimulatedCluster,
    kill_after_lines: int | None,
) -> list[str]:
    """One ``vsmux tail`` run: SIGKILLed after ``kill_after_lines`` lines, or
    (None) once its checkpoint is current. Returns its complete lines."""
    command = [
        sys.executable,
        "-m",
        "vsmux",
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
    ]
    data = bytearray()
    with stderr.open("ab") as errors, CheckpointStore(checkpoint) as store:
        process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, stderr=errors)
        assert process.stdout is not None
        try:
            with trio.fail_after(60):
                while True:
                    with trio.move_on_after(0.1):
                        chunk = await process.stdout.receive_some()
                        if not chunk:
                            raise AssertionError("tail exited; see its stderr")
                        data += chunk
                    if kill_after_lines is not None:
                        if data.count(b"\n") >= kill_after_lines:
                            break
                    elif caught_up(store.load(CLIENT), cluster):
                        break
        finally:
            process.kill()
            await process.wait()
        # What tail wrote before dying is still in the pipe: it counts.
        while chunk := await process.stdout.receive_some():
            data += chunk
    # A kill can cut the last line in half; the next run replays its unit.
    text = data.decode()
    return text.split("\n")[:-1]


async def test_sigkill_at_random_points_loses_nothing(aio_loop: None, tmp_path: Path) -> None:
    cluster = SimulatedCluster.build({KS: SHARDS}, seed=5)
    cluster.apply_random_transactions(40, KS)
    checkpoint = tmp_path / "tail.db"
    stderr = tmp_path / "stderr.txt"
    rng = random.Random(21)
    runs: list[list[str]] = []
    async with gateway(cluster) as port:
        # The copy first, undisturbed (see the README on crashes during a copy).
        runs.append(await tail_process(port, checkpoint, stderr, cluster, None))
        for _ in range(4):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: cluster.run_workload(150.0, keyspace=KS))
                lines = rng.randint(5, 80)
                runs.append(await tail_process(port, checkpoint, stderr, cluster, lines))
                nursery.cancel_scope.cancel()
        runs.append(await tail_process(port, checkpoint, stderr, cluster, None))
    assert all(runs), stderr.read_text()
    got, want = replay([line for run in runs for line in run]), truth(cluster)
    assert got == want, explain(runs, got, want)
    check_delivery(runs, cluster)
