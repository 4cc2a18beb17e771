"""Streams through a primary failover, end to end, under a running workload.

The client must see a pause and then exactly the transactions each shard
committed (its log: GTIDs 1..N with no gap), nothing twice, and no error.
"""

from __future__ import annotations

import itertools

import trio

from tests.e2e.e2e_harness import (
    Reader,
    T,
    caught_up,
    events,
    gtid_seqs,
    open_stack,
    request_for,
    seq_of,
    unit_seqs,
)
from vsmux.core.settings import GatewaySettings
from vsmux.proto import vtgate

SETTINGS = GatewaySettings(
    retry_backoff_initial=0.01, retry_backoff_max=0.05, failover_poll_interval=0.1
)
SHARD = "-80"
LABELS = ("commerce", SHARD, "PRIMARY")


class TimedReader(Reader):
    """A Reader that notes when each COMMIT of ``SHARD`` arrived."""

    commit_times: list[float]

    def _arrived(self, response: vtgate.VStreamResponse) -> None:
        if not hasattr(self, "commit_times"):
            self.commit_times = []
        now = trio.current_time()
        shard = ""
        for event in response.events:
            if event.type == T.BEGIN or event.type == T.ROW:
                shard = event.shard or shard
            if event.type == T.COMMIT and shard == SHARD:
                self.commit_times.append(now)
        super()._arrived(response)


def longest_pause(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def stream_through(mode: str, planned: bool, sync_topology: bool = True) -> None:
    async with open_stack(
        mode, settings=SETTINGS, tablet_types=("primary", "replica"), large_probability=0
    ) as stack:
        cluster = stack.cluster
        cluster.apply_random_transactions(20)
        start = {s: cluster.position("commerce", s) for s in ("-80", "80-")}
        reader = TimedReader(
            stack.port, request_for(*[("commerce", s, g) for s, g in start.items()])
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.run)
            workload = trio.CancelScope()

            async def write() -> None:
                with workload:
                    await cluster.run_workload(80.0, keyspace="commerce")

            nursery.start_soon(write)
            await reader.wait_for(lambda rs: len(gtid_seqs(rs).get(SHARD, [])) >= 20)
            old = cluster.tablet("commerce", SHARD).alias
            if not sync_topology:
                # The gateway's topology stays as it was (a static file): only the
                # tablets' health says which one is the primary now.
                stack.remote_topology = None
            if planned:
                new = stack.reparent("commerce", SHARD)
            else:
                new = await stack.fail_over("commerce", SHARD, promote_after=1.5)
            assert new != old
            await trio.sleep(1.0)  # the stream keeps going on the new primary
            workload.cancel()
            await reader.wait_for(caught_up(stack), timeout=15.0)
            reader.stop()
    assert reader.error is None
    if not sync_topology:
        assert stack.gateway.failover.primary("commerce", SHARD) == new
    begin = {s: seq_of(g) for s, g in start.items()}
    seqs = unit_seqs(reader.responses, begin)
    for shard in ("-80", "80-"):
        end = seq_of(cluster.position("commerce", shard))
        # Exactly the shard's transactions after the start: none lost, none twice.
        assert seqs[shard] == list(range(begin[shard] + 1, end + 1)), shard
    assert any(e.type == T.COMMIT for e in events(reader.responses))
    metrics = stack.gateway.metrics
    assert metrics.get("VStreamFailoverBufferStarts", LABELS) == 1
    assert metrics.get("VStreamFailoverBufferStopsNewPrimary", LABELS) == 1
    assert metrics.total("VStreamsEndedWithErrors") == 0
    if not planned:
        # The client saw a pause of about the failover, then everything written meanwhile.
        assert longest_pause(reader.commit_times) >= 1.0


async def test_planned_reparent_during_streaming(mode: str) -> None:
    await stream_through(mode, planned=True)


async def test_unplanned_failover_during_streaming(mode: str) -> None:
    await stream_through(mode, planned=False)


async def test_a_static_topology_finds_the_new_primary_by_health() -> None:
    await stream_through("grpc", planned=True, sync_topology=False)
    await stream_through("grpc", planned=False, sync_topology=False)
