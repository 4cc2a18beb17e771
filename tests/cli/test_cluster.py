"""`vsmux cluster` / `vsmux fake-tablet` and the topology file they write."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio_asyncio
from grpclib.client import Channel

from vsmux.cli import tablets
from vsmux.proto import binlogdata, query, queryservice
from vsmux.server.signals import StopSignals
from vsmux.sources._simulated import SimulatedCluster
from vsmux.topology import dump_topology, load_topology
from vsmux.transport import serve_cluster_tablets


def test_dump_topology_round_trips() -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"], "lookup": ["0"]}, tablet_types=("primary", "rdonly")
    )
    text = dump_topology(cluster.topology)
    loaded = load_topology(text)
    assert loaded == cluster.topology
    assert text.count("simulated = true") == 6


async def test_served_cluster_tablets_answer_on_their_addresses() -> None:
    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=2)
    cluster.apply_random_transactions(20)

    async def current(address: str, shard: str) -> list[binlogdata.VEvent]:
        host, port = address.rsplit(":", 1)
        channel = Channel(host, int(port))
        try:
            req = binlogdata.VStreamRequest(
                target=query.Target(keyspace="commerce", shard=shard), position="current"
            )
            async for response in queryservice.QueryStub(channel).v_stream(req, timeout=30):
                return list(response.events)
        finally:
            channel.close()
        return []

    async with trio_asyncio.open_loop(), serve_cluster_tablets(cluster, "127.0.0.1") as topology:
        assert load_topology(dump_topology(topology)) == topology
        for tablet in topology.tablets:
            assert tablet.address is not None
            events = await trio_asyncio.aio_as_trio(current)(tablet.address, tablet.shard)
            assert events[0].gtid == cluster.position("commerce", tablet.shard)
            assert events[0].shard == tablet.shard


def test_cluster_command_writes_topology_and_stops_on_sigint(tmp_path: Path) -> None:
    out = tmp_path / "topo.toml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vsmux",
            "cluster",
            "--topology-out",
            str(out),
            "--shards",
            "-40,40-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for _ in range(10):  # bounded: the banner is a handful of lines
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("next:") or not line:
                break
        assert lines[-1].startswith("next: vsmux serve --topology")
        topology = load_topology(out)
        assert topology.serving_shards("commerce") == ["-40", "40-"]
        assert all(t.address and t.address.startswith("127.0.0.1:") for t in topology.tablets)
        proc.send_signal(signal.SIGINT)
        returncode = proc.wait(timeout=30)
        assert proc.stderr is not None
        assert returncode == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_shards_are_reported_not_raised(capsys: object) -> None:
    from vsmux.cli.main import main

    assert main(["cluster", "--topology-out", "/nonexistent/x.toml", "--shards", "-80"]) == 2
    assert main(["fake-tablet", "--shard", "zz"]) == 2


async def _no_signals() -> AsyncIterator[int]:
    return
    yield


async def test_the_cluster_runs_asyncio_callbacks_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its loop serves as many tablet streams as the gateway opens: it must run
    # asyncio callbacks the gateway's way, not one per Trio step.
    asked: list[dict[str, bool]] = []

    class _Stop(Exception):
        pass

    @asynccontextmanager
    async def recording_loop(**kwargs: bool) -> AsyncIterator[None]:
        asked.append(kwargs)
        raise _Stop
        yield

    monkeypatch.setattr(tablets, "asyncio_loop", recording_loop)
    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=2)
    with pytest.raises(_Stop):
        await tablets._serve(
            cluster, "127.0.0.1", 0, 0.0, None, [], StopSignals(_no_signals()), None
        )
    assert asked == [{"batch_callbacks": True}]
