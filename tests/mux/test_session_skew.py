"""minimize_skew through a session: who waits, for how long, and no stalls."""

from __future__ import annotations

import pytest
import trio

from tests.mux.scripted import HANG, Client, Cluster, T, begin, commit, gtid, heartbeat, request
from vsmux.errors import Code, VStreamError
from vsmux.mux import run_vstream
from vsmux.wire import Frame

NS = 1_000_000_000


def tx(g: str, ts: int, lag: float) -> list[Frame]:
    """A transaction committed at ``ts`` and sent ``lag`` seconds later."""
    return [begin(), gtid(f"MySQL56/{g}"), commit(ts=ts, ct=int((ts + lag) * NS))]


@pytest.mark.parametrize("shards", [3, 4, 16])
async def test_skew_only_the_streams_ahead_wait(
    autojump_clock: trio.abc.Clock, shards: int
) -> None:
    cluster = Cluster()
    names = [f"{i:02x}-" for i in range(shards)]
    # The laggard's first transaction is 5 s old, the next 3.5 s, then 1 s.
    cluster.scripted(
        "ks",
        names[0],
        [tx("l1", 100, 5.0), 1.0, tx("l2", 100, 3.5), 1.0, tx("l3", 100, 1.0), HANG],
    )
    for i, name in enumerate(names[1:]):
        cluster.scripted("ks", name, [0.5, tx(f"f{i}", 100, 0.0), HANG])
    gateway = cluster.gateway()
    client = Client()
    req = request(*[("ks", n, "current") for n in names], minimize_skew=True)
    with trio.move_on_after(30):
        await run_vstream(req, gateway, client)
    assert client.types().count(T.COMMIT) == shards + 2
    assert gateway.metrics.total("VStreamEventsDelayedBySkewAlignment") == shards - 1
    # The laggard never waited; every other shard went out once it caught up at 2 s.
    assert client.send_times[:2] == [0.0, 1.0]
    assert set(client.send_times[2:]) == {2.0}
    assert cluster.open_streams() == 0


async def test_streams_within_the_window_do_not_wait(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-40", [tx("a", 100, 1.5), HANG])
    cluster.scripted("ks", "40-80", [0.5, tx("b", 100, 0.0), HANG])
    cluster.scripted("ks", "80-", [0.5, tx("c", 100, 0.0), HANG])
    gateway = cluster.gateway()
    client = Client()
    req = request(("ks", "-40", "current"), ("ks", "40-80", "current"), ("ks", "80-", "current"))
    req.flags.minimize_skew = True
    with trio.move_on_after(10):
        await run_vstream(req, gateway, client)
    # Both transactions queued at 0.5 leave in one coalesced send.
    assert client.send_times == [0.0, 0.5]
    assert gateway.metrics.total("VStreamEventsDelayedBySkewAlignment") == 0


async def test_heartbeats_catch_the_laggard_up(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-80", [tx("a", 100, 10.0), 3.0, [heartbeat(200, 200 * NS)], HANG])
    cluster.scripted("ks", "80-", [0.5, tx("b", 100, 0.0), HANG])
    gateway = cluster.gateway()
    client = Client()
    req = request(("ks", "-80", "current"), ("ks", "80-", "current"), minimize_skew=True)
    with trio.move_on_after(10):
        await run_vstream(req, gateway, client)
    assert client.send_times == [0.0, 3.0]
    assert gateway.metrics.total("VStreamEventsDelayedBySkewAlignment") == 1


async def test_skew_timeout_fails_the_request(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-80", [tx("a", 100, 30.0), HANG])
    cluster.scripted("ks", "80-", [0.5, tx("b", 100, 0.0), HANG])
    req = request(("ks", "-80", "current"), ("ks", "80-", "current"), minimize_skew=True)
    with pytest.raises(VStreamError) as info:
        await run_vstream(req, cluster.gateway(skew_timeout=120.0), Client())
    assert info.value.code == Code.CANCELED
    assert info.value.message.startswith("timed out while waiting for skew to reduce: ks/80-")
    assert trio.current_time() == 120.5
    assert cluster.open_streams() == 0


async def test_client_cancel_during_skew_wait_race(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-80", [tx("a", 100, 30.0), HANG])
    cluster.scripted("ks", "80-", [0.5, tx("b", 100, 0.0), HANG])
    gateway = cluster.gateway()
    req = request(("ks", "-80", "current"), ("ks", "80-", "current"), minimize_skew=True)
    with trio.move_on_after(1.0) as scope:
        await run_vstream(req, gateway, Client())
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0
    assert gateway.metrics.total("VStreamEventsDelayedBySkewAlignment") == 1
    assert cluster.open_streams() == 0
    assert gateway.metrics.total("VStreamsCount") == 0
    assert gateway.metrics.total("VStreamsEndedWithErrors") == 0


async def test_chunking_with_minimize_skew(autojump_clock: trio.abc.Clock) -> None:
    # A chunked transaction on a fast shard never waits mid-transaction, and the
    # other shard's units do not interleave with it.
    from tests.mux.scripted import row

    big = [[begin(), row("t1", b"v" * 100)]] + [[row("t1", b"v" * 100)] for _ in range(9)]
    cluster = Cluster()
    cluster.scripted(
        "ks",
        "-80",
        [*big, [gtid("MySQL56/a:1"), commit(ts=100, ct=100 * NS)], HANG],
    )
    cluster.scripted(
        "ks",
        "80-",
        [tx("b1", 100, 0.0), [], tx("b2", 100, 0.0), [], tx("b3", 100, 0.0), HANG],
    )
    client = Client()
    req = request(
        ("ks", "-80", "current"),
        ("ks", "80-", "current"),
        minimize_skew=True,
        transaction_chunk_size=150,
    )
    with trio.move_on_after(10):
        await run_vstream(req, cluster.gateway(), client)
    types = client.types()
    assert types.count(T.COMMIT) == 4
    start = types.index(T.ROW)
    assert types[start - 1 : start + 12] == [T.BEGIN] + [T.ROW] * 10 + [T.VGTID, T.COMMIT]
