"""Idle heartbeats and liveness, under the mock clock."""

from __future__ import annotations

import time

import pytest
import trio

from tests.mux.scripted import HANG, Client, Cluster, T, commit, gtid, heartbeat, request
from vsmux.errors import Code, VStreamError
from vsmux.mux import run_vstream


@pytest.mark.parametrize(("interval", "expected"), [(0, 0), (1, 4), (2, 2)])
async def test_idle_heartbeat_counts(
    autojump_clock: trio.abc.Clock, interval: int, expected: int
) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [HANG])
    client = Client()
    req = request(("ks", "-20", "current"), heartbeat_interval=interval)
    with trio.move_on_after(4.5):
        await run_vstream(req, cluster.gateway(), client)
    assert client.types() == [T.HEARTBEAT] * expected
    assert client.send_times == [float(interval * (i + 1)) for i in range(expected)]
    for event in client.events:
        assert event.keyspace == "" and event.shard == ""
        assert event.current_time // 1_000_000_000 == event.timestamp
        assert abs(event.current_time - time.time_ns()) < 60 * 1_000_000_000
    assert cluster.open_streams() == 0


async def test_real_sends_restart_the_idle_timer(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted(
        "ks",
        "-20",
        [1.5, [gtid("MySQL56/a:1"), commit()], 1.5, [gtid("MySQL56/a:2"), commit()], HANG],
    )
    client = Client()
    req = request(("ks", "-20", "current"), heartbeat_interval=2)
    with trio.move_on_after(6.0):
        await run_vstream(req, cluster.gateway(), client)
    # Sends at 1.5 and 3.0 (events), then heartbeats at 5.0 only.
    assert client.send_times == [1.5, 3.0, 5.0]
    assert [r[-1].type for r in client.responses] == [T.COMMIT, T.COMMIT, T.HEARTBEAT]


async def test_liveness_ends_a_silent_request(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[heartbeat()], 100.0, [heartbeat()], HANG])
    client = Client()
    gateway = cluster.gateway(liveness_timeout=600.0)
    start = trio.current_time()
    with pytest.raises(VStreamError) as info:
        await run_vstream(
            request(("ks", "-20", "current"), heartbeat_interval=1),
            gateway,
            client,
        )
    # Tablet heartbeats count as activity (the last at 100 s); our own do not.
    assert trio.current_time() - start == 700.0
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message == (
        "vstream is fully throttled or otherwise hung: vstream failed liveness checks as "
        "there was no activity, including heartbeats, within the last 10m0s"
    )
    assert cluster.open_streams() == 0
    assert gateway.metrics.total("VStreamsCount") == 0


async def test_liveness_duration_is_configurable(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [HANG])
    with pytest.raises(VStreamError) as info:
        await run_vstream(
            request(("ks", "-20", "current")),
            cluster.gateway(liveness_timeout=90.0),
            Client(),
        )
    assert info.value.message.endswith("within the last 1m30s")
    assert trio.current_time() == 90.0
