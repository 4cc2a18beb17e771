"""PRIMARY streams through a failover: they wait in the shard's buffer, then resume.

Each test has a shard with two tablets serving the same history (LogTablets
with the same transactions, one committed every 0.1 s): A starts as the
primary, B as a replica. The client must get every transaction once, in
order, whatever happens to the primary.
"""

from __future__ import annotations

import logging

import pytest
import trio

from tests.mux.scripted import (
    Client,
    Cluster,
    LogTablet,
    T,
    begin,
    commit,
    log_position,
    request,
    row,
)
from vsmux.core.failover import BufferState
from vsmux.errors import Code, VStreamError
from vsmux.mux import run_vstream
from vsmux.proto import topodata

PRIMARY = topodata.TabletType.PRIMARY
REPLICA = topodata.TabletType.REPLICA
LABELS = ("ks", "-20", "PRIMARY")
COUNT = 60  # transactions, one every PACE seconds
PACE = 0.1


def transactions() -> list[list[object]]:
    return [[begin(), row(value=str(i).encode()), commit()] for i in range(COUNT)]


def shard(cluster: Cluster) -> tuple[LogTablet, LogTablet]:
    txs = transactions()
    a = cluster.log("ks", "-20", txs, pace=PACE)  # type: ignore[arg-type]
    b = cluster.log("ks", "-20", txs, pace=PACE)  # type: ignore[arg-type]
    cluster.retype(b, REPLICA)
    return a, b


def seqs(client: Client) -> list[int]:
    """The transaction number of each VGTID the client received."""
    out = []
    for event in client.events:
        if event.type == T.VGTID and event.vgtid is not None:
            gtid = event.vgtid.shard_gtids[0].gtid
            out.append(int(gtid.rpartition("-")[2]))
    return out


def metric(cluster_gateway: object, name: str) -> float:
    return cluster_gateway.metrics.get(f"VStreamFailoverBuffer{name}", LABELS)  # type: ignore[attr-defined]


def reparent(cluster: Cluster, old: LogTablet, new: LogTablet) -> None:
    cluster.retype(old, REPLICA)
    cluster.retype(new, PRIMARY)


async def stream_until(
    cluster: Cluster, client: Client, gateway: object, until: float, **flags: object
) -> VStreamError | None:
    req = request(("ks", "-20", log_position(0)), **flags)
    with trio.move_on_at(until):
        try:
            await run_vstream(req, gateway, client)  # type: ignore[arg-type]
        except VStreamError as err:
            return err
    return None


def heartbeat_times(client: Client) -> list[float]:
    return [
        t
        for t, response in zip(client.send_times, client.responses, strict=False)
        if [e.type for e in response] == [T.HEARTBEAT]
    ]


async def test_planned_reparent_resumes_on_the_new_primary(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "vsmux.failover")
    cluster = Cluster()
    a, b = shard(cluster)
    gateway = cluster.gateway()
    client = Client()

    async def operator() -> None:
        await trio.sleep(2.0)
        cluster.retype(a, REPLICA)  # demoted: its streams end
        await trio.sleep(1.5)
        cluster.retype(b, PRIMARY)  # promoted 1.5 s later

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 10.0)
    assert error is None
    assert seqs(client) == list(range(1, COUNT + 1))  # every one, once, in order
    assert len(a.requests) == 1 and len(b.requests) == 1  # no retry spent
    assert metric(gateway, "Starts") == 1
    assert metric(gateway, "StopsNewPrimary") == 1
    assert metric(gateway, "StreamsBuffered") == 1
    assert 1.5 <= metric(gateway, "LastFailoverDurationSeconds") <= 2.0
    assert gateway.failover.buffer("ks", "-20").state is BufferState.IDLE  # type: ignore[attr-defined]
    assert cluster.open_streams() == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Started buffering for ks/-20 (window 10s") for m in messages)
    assert any(
        m.startswith("Stopped buffering for ks/-20 after 1.") and "serving primary" in m
        for m in messages
    )


async def test_unplanned_failover_ends_in_time_with_heartbeats_meanwhile(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    a, b = shard(cluster)
    gateway = cluster.gateway()
    client = Client()

    async def operator() -> None:
        await trio.sleep(2.0)
        a.set_health(down=True)  # the primary dies; the topology still names it
        await trio.sleep(4.0)
        reparent(cluster, a, b)  # a replica is promoted 4 s later

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 12.0, heartbeat_interval=1)
    assert error is None
    assert seqs(client) == list(range(1, COUNT + 1))
    assert len(a.requests) == 1 and len(b.requests) == 1
    assert metric(gateway, "StopsNewPrimary") == 1
    assert 4.0 <= metric(gateway, "LastFailoverDurationSeconds") <= 4.5
    # The client heard from the gateway during the pause.
    assert len([t for t in heartbeat_times(client) if 2.0 < t < 6.0]) >= 3


async def test_failover_longer_than_the_maximum_goes_back_to_retrying(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    a, _b = shard(cluster)
    gateway = cluster.gateway(failover_max_duration=5.0, failover_window=10.0)
    client = Client()

    async def operator() -> None:
        await trio.sleep(2.0)
        a.set_health(down=True)  # and no replica is ever promoted

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 60.0)
    assert error is not None
    assert error.code == Code.UNAVAILABLE
    assert "giving up" in error.message
    assert "waited 5.0s in the failover buffer for a new serving primary of ks/-20" in (
        error.message
    )
    assert metric(gateway, "StopsMaxFailoverDurationExceeded") == 1
    assert metric(gateway, "StopsNewPrimary") == 0
    # After the maximum the retries are the usual ones, not buffered again.
    assert metric(gateway, "StartsSkippedLastFailoverTooRecent") >= 1
    assert metric(gateway, "Starts") == 1
    assert seqs(client) == list(range(1, len(seqs(client)) + 1))  # nothing lost before


async def test_a_stream_past_its_window_retries_and_waits_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    a, b = shard(cluster)
    gateway = cluster.gateway(failover_window=1.0, tablet_pick_retry_interval=0.5)
    client = Client()

    async def operator() -> None:
        await trio.sleep(2.0)
        a.set_health(down=True)
        await trio.sleep(2.5)
        reparent(cluster, a, b)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 12.0)
    # Twice the stream left the buffer after its 1 s window, spent a retry on the
    # dead primary and joined the same buffering episode again; the third wait
    # saw the promotion.
    assert error is None
    assert metric(gateway, "StreamsWindowExceeded") == 2
    assert metric(gateway, "StreamsBuffered") == 3
    assert metric(gateway, "Starts") == 1
    assert seqs(client) == list(range(1, COUNT + 1))


async def test_two_failovers_too_close_together_buffer_only_the_first(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    a, b = shard(cluster)
    gateway = cluster.gateway(
        failover_min_time_between=60.0,
        tablet_pick_retry_interval=0.5,
        retry_backoff_initial=0.5,
        retry_backoff_max=1.0,
    )
    client = Client()

    async def operator() -> None:
        await trio.sleep(1.0)
        cluster.retype(a, REPLICA)
        await trio.sleep(1.0)
        cluster.retype(b, PRIMARY)
        await trio.sleep(2.0)  # 2 s later, back again
        cluster.retype(b, REPLICA)
        await trio.sleep(1.0)
        cluster.retype(a, PRIMARY)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 15.0)
    assert error is None
    assert seqs(client) == list(range(1, COUNT + 1))
    assert metric(gateway, "Starts") == 1
    assert metric(gateway, "StopsNewPrimary") == 1
    # The second failover was retried the usual way (a tablet pick that waited).
    assert metric(gateway, "StartsSkippedLastFailoverTooRecent") >= 1
    assert len(a.requests) == 2 and len(b.requests) == 1


async def test_shutdown_while_buffering_lets_the_streams_go(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    a, _b = shard(cluster)
    gateway = cluster.gateway(failover_max_duration=100.0, failover_window=100.0)
    client = Client()
    buffer = gateway.failover.buffer("ks", "-20")

    async def operator() -> None:
        await trio.sleep(2.0)
        a.set_health(down=True)
        await trio.sleep(3.0)
        assert buffer.state is BufferState.BUFFERING
        assert buffer.waiting == 1
        gateway.failover.shutdown()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 5.5)
    # Let go at 5 s, the stream took the usual retry path against the dead primary.
    assert error is not None
    assert "giving up" in error.message
    assert "waited 3.0s in the failover buffer" in error.message
    assert metric(gateway, "StopsShutdown") == 1
    assert buffer.state is BufferState.IDLE
    assert buffer.waiting == 0
    assert len(a.requests) == 3  # the first stream, then two retries
    assert cluster.open_streams() == 0


async def test_dry_run_counts_but_retries(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    a, b = shard(cluster)
    gateway = cluster.gateway(failover_dry_run=True, tablet_pick_retry_interval=0.5)
    client = Client()

    async def operator() -> None:
        await trio.sleep(2.0)
        cluster.retype(a, REPLICA)
        cluster.retype(b, PRIMARY)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 10.0)
    assert error is None
    assert seqs(client) == list(range(1, COUNT + 1))
    assert metric(gateway, "StreamsBufferedDryRun") == 1
    assert metric(gateway, "StreamsBuffered") == 0
    assert metric(gateway, "Starts") == 1
    assert metric(gateway, "StopsNewPrimary") == 1  # b's first health report


@pytest.mark.parametrize("tablet_type", [REPLICA])
async def test_other_tablet_types_are_not_buffered(
    autojump_clock: trio.abc.Clock, tablet_type: topodata.TabletType
) -> None:
    cluster = Cluster()
    txs = transactions()
    a = cluster.log("ks", "-20", txs, pace=PACE)  # type: ignore[arg-type]
    b = cluster.log("ks", "-20", txs, pace=PACE)  # type: ignore[arg-type]
    cluster.retype(a, tablet_type)
    cluster.retype(b, tablet_type)
    gateway = cluster.gateway()
    client = Client()

    async def operator() -> None:
        await trio.sleep(2.0)
        for t in (a, b):
            if t.open_streams:
                t.set_health(down=True)

    req = request(("ks", "-20", log_position(0)), tablet_type=tablet_type)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        with trio.move_on_after(10.0):
            await run_vstream(req, gateway, client)
    assert seqs(client) == list(range(1, COUNT + 1))
    assert metric(gateway, "Starts") == 0


async def test_no_primary_in_the_topology_waits_in_the_buffer(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A request that starts mid-failover: the topology names no primary yet. The
    # picker alone would look again only every 30 s; the buffer resumes at once.
    cluster = Cluster()
    a, b = shard(cluster)
    cluster.retype(a, REPLICA)
    gateway = cluster.gateway()
    client = Client()

    async def operator() -> None:
        await trio.sleep(2.0)
        cluster.retype(b, PRIMARY)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 12.0)
    assert error is None
    assert seqs(client) == list(range(1, COUNT + 1))
    assert client.send_times[0] < 3.0
    assert metric(gateway, "Starts") == 1
    assert metric(gateway, "StopsNewPrimary") == 1
    assert len(a.requests) == 0 and len(b.requests) == 1


async def test_a_failover_too_soon_retries_on_the_primary_the_tablets_report(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The topology never changes (a static file); only the tablets' health does.
    cluster = Cluster()
    txs = transactions()
    a, b, c = (cluster.log("ks", "-20", txs, pace=PACE) for _ in range(3))  # type: ignore[arg-type]
    cluster.retype(b, REPLICA)
    cluster.retype(c, REPLICA)
    gateway = cluster.gateway()
    client = Client()

    async def operator() -> None:
        await trio.sleep(1.0)
        a.set_health(tablet_type=REPLICA)
        b.set_health(tablet_type=PRIMARY)  # buffered: found by health
        await trio.sleep(2.0)
        b.set_health(tablet_type=REPLICA)
        c.set_health(tablet_type=PRIMARY)  # too soon: a retry, sent to c

    async with trio.open_nursery() as nursery:
        nursery.start_soon(operator)
        error = await stream_until(cluster, client, gateway, 10.0)
    assert error is None
    assert seqs(client) == list(range(1, COUNT + 1))
    assert metric(gateway, "Starts") == 1
    assert metric(gateway, "StartsSkippedLastFailoverTooRecent") == 1
    assert (len(a.requests), len(b.requests), len(c.requests)) == (1, 1, 1)
    assert gateway.failover.primary("ks", "-20") == c.tablet.alias  # type: ignore[attr-defined]
