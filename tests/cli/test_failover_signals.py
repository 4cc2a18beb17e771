"""``vsmux cluster``'s failover signals: SIGUSR1 reparents a shard, SIGUSR2 fails one over."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable

import pytest
import trio

from vsmux.cli import failover_signals
from vsmux.cli.failover_signals import failovers_on_signals
from vsmux.sources import SimulatedCluster


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll: a signal is handled by the signal receiver's task, which sets nothing."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await trio.sleep(0.01)
    raise AssertionError("timed out")


async def test_sigusr1_reparents_and_sigusr2_fails_over(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(failover_signals, "UNPLANNED_PROMOTE_SECONDS", 0.2)
    cluster = SimulatedCluster.build({"commerce": ["0"]}, tablet_types=("primary", "replica"))
    first = cluster.tablet("commerce", "0").alias
    async with trio.open_nursery() as nursery:
        await nursery.start(failovers_on_signals, cluster, random.Random(1))
        os.kill(os.getpid(), signal.SIGUSR1)
        await wait_until(lambda: len(cluster.reparents) == 1)
        os.kill(os.getpid(), signal.SIGUSR2)
        await wait_until(lambda: len(cluster.reparents) == 2)
        nursery.cancel_scope.cancel()
    assert [r[4] for r in cluster.reparents] == ["planned", "unplanned"]
    assert cluster.tablet("commerce", "0").alias == first  # and back
    out = capsys.readouterr().out
    assert "planned reparent of commerce/0" in out
    assert "unplanned failover of commerce/0" in out


async def test_without_replicas_the_signal_is_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]})
    async with trio.open_nursery() as nursery:
        await nursery.start(failovers_on_signals, cluster)
        os.kill(os.getpid(), signal.SIGUSR1)
        err: list[str] = []
        await wait_until(lambda: err.append(capsys.readouterr().err) or "no shard" in "".join(err))
        nursery.cancel_scope.cancel()
    assert cluster.reparents == []
