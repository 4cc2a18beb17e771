"""Reshard journals through a session: swaps, stop_on_reshard, include events."""

from __future__ import annotations

import pytest
import trio

from tests.mux.scripted import (
    HANG,
    Client,
    Cluster,
    T,
    begin,
    commit,
    ev,
    gtid,
    heartbeat,
    journal,
    request,
)
from vsmux.errors import Code, VStreamError
from vsmux.mux import run_vstream
from vsmux.proto import binlogdata, vtgate

P = "MySQL56/"


def sg(ks: str, shard: str, g: str) -> binlogdata.ShardGtid:
    return binlogdata.ShardGtid(keyspace=ks, shard=shard, gtid=g)


async def collect(cluster: Cluster, req: object, count: int) -> Client:
    client = Client()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_vstream, req, cluster.gateway(), client)
        with trio.fail_after(60):
            while len(client.events) < count:
                await client.received.wait()
        nursery.cancel_scope.cancel()
    assert cluster.open_streams() == 0
    return client


async def test_journal_one_to_many(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    old = cluster.scripted(
        "ks",
        "-20",
        [
            [gtid(P + "g01"), commit()],
            [begin(), journal(1, "ks", ["-20"], [("-10", P + "g02"), ("10-20", P + "g03")])],
            HANG,
        ],
    )
    new1 = cluster.scripted("ks", "-10", [[gtid(P + "g04"), commit()], HANG])
    new2 = cluster.scripted("ks", "10-20", [HANG])
    client = await collect(cluster, request(("ks", "-20", P + "g00")), 4)
    assert client.types() == [T.VGTID, T.COMMIT, T.VGTID, T.COMMIT]
    assert client.events[0].vgtid == binlogdata.VGtid(shard_gtids=[sg("ks", "-20", P + "g01")])
    assert client.events[2].vgtid == binlogdata.VGtid(
        shard_gtids=[sg("ks", "-10", P + "g04"), sg("ks", "10-20", P + "g03")]
    )
    assert [r.position for r in new1.requests] == [P + "g02"]
    assert [r.position for r in new2.requests] == [P + "g03"]
    assert len(old.requests) == 1


async def test_journal_many_to_one(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    jnl = journal(1, "ks", ["-20", "20-40"], [("-40", P + "g04")])
    cluster.scripted("ks", "-20", [[gtid(P + "g01"), commit()], [begin(), jnl], HANG])
    cluster.scripted("ks", "20-40", [1.0, [gtid(P + "g02"), commit()], 1.0, [jnl], HANG])
    merged = cluster.scripted("ks", "-40", [[gtid(P + "g05"), commit()], HANG])
    client = await collect(cluster, request(("ks", "-20", P + "a"), ("ks", "20-40", P + "b")), 6)
    vgtids = [e.vgtid for e in client.events if e.type == T.VGTID]
    assert vgtids == [
        binlogdata.VGtid(shard_gtids=[sg("ks", "-20", P + "g01"), sg("ks", "20-40", P + "b")]),
        binlogdata.VGtid(shard_gtids=[sg("ks", "-20", P + "g01"), sg("ks", "20-40", P + "g02")]),
        binlogdata.VGtid(shard_gtids=[sg("ks", "-40", P + "g05")]),
    ]
    assert [r.position for r in merged.requests] == [P + "g04"]
    # The new shard starts only once both participants reached the journal.
    assert client.send_times[-1] >= 2.0


async def test_journal_of_other_shards_is_ignored(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    other = journal(1, "ks", ["40-60", "60-80"], [("40-80", P + "x")])
    cluster.scripted("ks", "-20", [[begin(), other, gtid(P + "g1"), commit()], HANG])
    client = await collect(cluster, request(("ks", "-20", "current")), 3)
    assert client.types() == [T.BEGIN, T.VGTID, T.COMMIT]


@pytest.mark.parametrize("order", [["-20", "20-40"], ["20-40", "-20"]])
async def test_journal_partial_match_fails(
    autojump_clock: trio.abc.Clock, order: list[str]
) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [[begin(), journal(1, "ks", order, [("-40", P + "x")])], HANG])
    cluster.scripted("ks", "40-", [HANG])
    cluster.tablet_info("ks", "20-40")
    with pytest.raises(VStreamError) as info:
        await run_vstream(
            request(("ks", "-20", "current"), ("ks", "40-", "current")),
            cluster.gateway(),
            Client(),
        )
    assert info.value.code == Code.INTERNAL
    assert "not all journaling participants are in the stream" in info.value.message
    assert cluster.open_streams() == 0


async def test_stop_on_reshard_sends_journal_and_ends_ok(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    jnl = journal(1, "ks", ["-20", "20-40"], [("-40", P + "g04")])
    cluster.scripted(
        "ks", "-20", [[gtid(P + "g01"), commit()], [begin(), jnl, gtid(P + "g02"), commit()], HANG]
    )
    cluster.scripted("ks", "20-40", [2.0, [begin(), jnl, gtid(P + "g03"), commit()], HANG])
    merged = cluster.scripted("ks", "-40", [[gtid(P + "g05"), commit()], HANG])
    other = cluster.scripted("other", "0", [HANG])
    client = Client()
    req = request(
        ("ks", "-20", "current"),
        ("ks", "20-40", "current"),
        ("other", "0", "current"),
        stop_on_reshard=True,
    )
    with trio.fail_after(60):
        await run_vstream(req, cluster.gateway(), client)
    # Each participant's journal transaction whole, as current vtgate sends it.
    journal_tx = [T.BEGIN, T.JOURNAL, T.VGTID, T.COMMIT]
    assert client.types() == [T.VGTID, T.COMMIT, *journal_tx, *journal_tx]
    last = [e for e in client.events if e.type == T.VGTID][-1].vgtid
    assert last is not None
    assert [(g.shard, g.gtid) for g in last.shard_gtids if g.keyspace == "ks"] == [
        ("-20", P + "g02"),
        ("20-40", P + "g03"),
    ]
    assert trio.current_time() == 2.0
    assert merged.requests == []
    assert len(other.requests) == 1
    assert cluster.open_streams() == 0


async def test_include_reshard_journal_events_continues(autojump_clock: trio.abc.Clock) -> None:
    cluster = Cluster()
    jnl = journal(1, "ks", ["-20"], [("-10", P + "g02"), ("10-20", P + "g03")])
    cluster.scripted("ks", "-20", [[begin(), jnl], HANG])
    cluster.scripted("ks", "-10", [[gtid(P + "g04"), commit()], HANG])
    cluster.scripted("ks", "10-20", [HANG])
    req = request(("ks", "-20", "current"), include_reshard_journal_events=True)
    client = await collect(cluster, req, 4)
    assert client.types() == [T.BEGIN, T.JOURNAL, T.VGTID, T.COMMIT]
    journal_event = client.events[1].journal
    assert journal_event is not None and journal_event.id == 1
    assert client.events[2].vgtid == binlogdata.VGtid(
        shard_gtids=[sg("ks", "-10", P + "g04"), sg("ks", "10-20", P + "g03")]
    )


async def test_journal_convergence_while_another_shard_errors_race(
    autojump_clock: trio.abc.Clock,
) -> None:
    # -20 waits at the journal for 20-40; meanwhile other/0 fails for good.
    cluster = Cluster()
    jnl = journal(1, "ks", ["-20", "20-40"], [("-40", P + "g04")])
    cluster.scripted("ks", "-20", [[begin(), jnl], HANG])
    cluster.scripted("ks", "20-40", [5.0, [jnl], HANG])
    cluster.scripted("ks", "-40", [HANG])
    cluster.scripted("other", "0", [1.0, VStreamError(Code.PERMISSION_DENIED, "tablet says no")])
    gateway = cluster.gateway()
    with pytest.raises(VStreamError) as info:
        await run_vstream(
            request(
                ("ks", "-20", "current"), ("ks", "20-40", "current"), ("other", "0", "current")
            ),
            gateway,
            Client(),
        )
    assert info.value.code == Code.PERMISSION_DENIED
    assert trio.current_time() == 1.0
    assert cluster.open_streams() == 0
    assert gateway.metrics.total("VStreamsCount") == 0
    assert gateway.metrics.total("VStreamsEndedWithErrors") == 1


# -- the heartbeat rule: a participant whose stream started past its journal --

JNL = journal(1, "ks", ["-20", "20-40"], [("-40", P + "g04")])
# Where "current" is, as a tablet's stream opened there begins.
START = [gtid(P + "g00"), ev(T.OTHER)]


def _merge_request() -> vtgate.VStreamRequest:
    return request(("ks", "-20", "current"), ("ks", "20-40", "current"))


async def test_a_participant_past_its_journal_arrives_at_its_next_heartbeat_race(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [START, 2.0, [begin(), JNL, gtid(P + "g02"), commit()], HANG])
    # Opened after its journal: nothing but heartbeats follow its start. The
    # first comes before -20 arrived and proves nothing; the second does.
    cluster.scripted("ks", "20-40", [START, 1.0, [heartbeat()], 2.0, [heartbeat()], HANG])
    merged = cluster.scripted("ks", "-40", [[gtid(P + "g05"), commit()], HANG])
    client = await collect(cluster, _merge_request(), 6)
    assert client.types() == [T.VGTID, T.OTHER, T.VGTID, T.OTHER, T.VGTID, T.COMMIT]
    assert client.events[4].vgtid == binlogdata.VGtid(shard_gtids=[sg("ks", "-40", P + "g05")])
    assert [r.position for r in merged.requests] == [P + "g04"]
    assert client.send_times[-1] == 3.0


async def test_a_heartbeat_before_the_arrival_does_not_count_race(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [START, 2.0, [begin(), JNL, gtid(P + "g02"), commit()], HANG])
    # Its heartbeat at 1.0 precedes -20's arrival; its own journal comes at 3.0.
    cluster.scripted(
        "ks", "20-40", [START, 1.0, [heartbeat()], 2.0, [begin(), JNL, gtid(P + "g03"), commit()]]
    )
    merged = cluster.scripted("ks", "-40", [[gtid(P + "g05"), commit()], HANG])
    client = await collect(cluster, _merge_request(), 6)
    assert [r.position for r in merged.requests] == [P + "g04"]
    assert client.send_times[-1] == 3.0  # when 20-40 read its journal, not before


async def test_a_heartbeat_sent_before_the_journal_was_written_does_not_count_race(
    autojump_clock: trio.abc.Clock,
) -> None:
    # -20 reads its journal, written at tablet second 100. 20-40's heartbeat of
    # second 100 arrives after that (late, it may be ahead of writes still on
    # their way); only its heartbeat of second 101 shows it is past the journal.
    cluster = Cluster()
    written = journal(1, "ks", ["-20", "20-40"], [("-40", P + "g04")], timestamp=100)
    cluster.scripted("ks", "-20", [START, 2.0, [begin(), written, gtid(P + "g02"), commit()], HANG])
    cluster.scripted(
        "ks",
        "20-40",
        [START, 3.0, [heartbeat(ts=100)], 1.0, [heartbeat(ts=101, ct=101_000_000_000)], HANG],
    )
    merged = cluster.scripted("ks", "-40", [[gtid(P + "g05"), commit()], HANG])
    client = await collect(cluster, _merge_request(), 6)
    assert [r.position for r in merged.requests] == [P + "g04"]
    assert client.send_times[-1] == 4.0  # at the second heartbeat, not the first


async def test_an_anchored_participant_is_not_taken_past_its_journal(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [START, 2.0, [begin(), JNL, gtid(P + "g02"), commit()], HANG])
    # 20-40 read a transaction after its start: its journal is ahead of it,
    # heartbeats or not, and it must read it (at 6.0).
    cluster.scripted(
        "ks",
        "20-40",
        [
            START,
            0.5,
            [begin(), gtid(P + "g06"), commit()],
            2.5,
            [heartbeat()],
            1.0,
            [heartbeat()],
            2.0,
            [begin(), JNL, gtid(P + "g07"), commit()],
            HANG,
        ],
    )
    merged = cluster.scripted("ks", "-40", [[gtid(P + "g05"), commit()], HANG])
    client = await collect(cluster, _merge_request(), 9)
    assert client.types()[4:] == [T.BEGIN, T.VGTID, T.COMMIT, T.VGTID, T.COMMIT]
    assert [r.position for r in merged.requests] == [P + "g04"]
    assert client.send_times[-1] == 6.0


async def test_a_participant_at_its_journal_holds_no_one_back_for_skew(
    autojump_clock: trio.abc.Clock,
) -> None:
    # -20 stops at the journal with its last event at 0 s; 20-40's transaction
    # at 5 s is more than max_skew_seconds (2) ahead of that, but -20 streams
    # no more: 20-40 must go on to its own journal.
    cluster = Cluster()
    cluster.scripted(
        "ks", "-20", [[begin(), gtid(P + "g01"), commit(1, 1_000_000_000)], [begin(), JNL], HANG]
    )
    cluster.scripted(
        "ks",
        "20-40",
        [5.0, [begin(), gtid(P + "g02"), commit(5, 5_000_000_000)], [begin(), JNL], HANG],
    )
    merged = cluster.scripted("ks", "-40", [[gtid(P + "g05"), commit(6, 6_000_000_000)], HANG])
    req = request(("ks", "-20", "current"), ("ks", "20-40", "current"), minimize_skew=True)
    client = await collect(cluster, req, 8)
    assert client.types() == [T.BEGIN, T.VGTID, T.COMMIT] * 2 + [T.VGTID, T.COMMIT]
    assert [r.position for r in merged.requests] == [P + "g04"]
    assert client.send_times[-1] == 5.0


async def test_stop_on_reshard_ends_when_the_last_participant_passed_its_journal(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = Cluster()
    cluster.scripted("ks", "-20", [START, 1.0, [begin(), JNL, gtid(P + "g02"), commit()], HANG])
    cluster.scripted("ks", "20-40", [START, 2.0, [heartbeat()], HANG])
    merged = cluster.scripted("ks", "-40", [HANG])
    client = Client()
    req = request(("ks", "-20", "current"), ("ks", "20-40", "current"), stop_on_reshard=True)
    with trio.fail_after(60):
        await run_vstream(req, cluster.gateway(), client)
    # -20's journal transaction reaches the client; 20-40 has none to send.
    journal_tx = [T.BEGIN, T.JOURNAL, T.VGTID, T.COMMIT]
    assert client.types() == [T.VGTID, T.OTHER, T.VGTID, T.OTHER, *journal_tx]
    assert trio.current_time() == 2.0
    assert merged.requests == []
    assert cluster.open_streams() == 0
