"""``vsmux cluster`` and ``vsmux serve`` as processes: failovers on SIGUSR1 and SIGUSR2.

The gateway reads the topology file once, so after a failover only the tablets'
health tells it which tablet is the primary. The client must keep streaming, with
every shard's transactions once each and in order.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio
import trio_asyncio

from tests.e2e.e2e_harness import Reader, request_for, serve_command, unit_seqs


class Lines:
    """Lines of a process's stdout, read as they come."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdout is not None
        self._stream = process.stdout
        self._buffer = b""
        self.seen: list[str] = []

    async def until(self, text: str, timeout: float = 20.0) -> str:
        with trio.fail_after(timeout):
            while True:
                for line in self.seen:
                    if text in line:
                        self.seen.remove(line)
                        return line
                chunk = await self._stream.receive_some(4096)
                assert chunk, f"the process ended before printing {text!r}"
                self._buffer += chunk
                *lines, self._buffer = self._buffer.split(b"\n")
                self.seen.extend(line.decode() for line in lines)


def contiguous(seqs: dict[str, list[int]]) -> bool:
    return all(v == list(range(v[0], v[0] + len(v))) for v in seqs.values())


async def test_stream_rides_through_failovers_of_a_cluster_process(tmp_path: Path) -> None:
    topology = tmp_path / "topology.toml"
    vsmux = [sys.executable, "-m", "vsmux"]
    cluster_cmd = [
        *vsmux,
        "cluster",
        "--topology-out",
        str(topology),
        "--tablet-types",
        "primary,replica",
        "--shards",
        "-80,80-",
        "--rate",
        "40",
    ]
    # The two signals may pick the same shard a second apart: buffer both.
    serve_cmd = serve_command(topology, "--failover-min-time-between", "0.5")
    async with trio.open_nursery() as nursery:
        run = partial(trio.run_process, stdout=subprocess.PIPE, check=False)
        cluster = await nursery.start(partial(run, cluster_cmd))
        cluster_out = Lines(cluster)
        await cluster_out.until("next: vsmux serve")
        serve = await nursery.start(partial(run, serve_cmd))
        banner = await Lines(serve).until("vsmux gateway listening on ")
        port = int(banner.rsplit(":", 1)[1])
        async with trio_asyncio.open_loop(), trio.open_nursery() as clients:
            reader = Reader(port, request_for(("commerce", "", "current")))
            clients.start_soon(reader.run)

            def commits_on_both(n: int) -> object:
                return lambda rs: all(len(unit_seqs(rs).get(s, [])) >= n for s in ("-80", "80-"))

            await reader.wait_for(commits_on_both(10), timeout=20)
            cluster.send_signal(signal.SIGUSR1)
            await cluster_out.until("planned reparent of commerce/")
            await reader.wait_for(commits_on_both(30), timeout=20)
            cluster.send_signal(signal.SIGUSR2)
            await cluster_out.until("is the primary", timeout=20)
            await reader.wait_for(commits_on_both(70), timeout=30)
            reader.stop()
        for process in (serve, cluster):
            process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await serve.wait() == 0
            assert await cluster.wait() == 0
    assert reader.error is None
    seqs = unit_seqs(reader.responses)
    assert contiguous(seqs), seqs  # every shard's transactions once each, in order
