"""Journal convergence bookkeeping: TABLES, none, partial, all participants, the heartbeat rule."""

from __future__ import annotations

import pytest

from vsmux.core.journal import JournalTracker, StreamAnchor
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata
from vsmux.wire import Frame, frame_of

SHARDS = binlogdata.MigrationType.SHARDS


def journal(
    jid: int,
    participants: list[str],
    new: list[str],
    mtype: binlogdata.MigrationType = SHARDS,
) -> binlogdata.Journal:
    return binlogdata.Journal(
        id=jid,
        migration_type=mtype,
        participants=[binlogdata.KeyspaceShard(keyspace="ks", shard=s) for s in participants],
        shard_gtids=[binlogdata.ShardGtid(keyspace="ks", shard=s, gtid=f"g{s}") for s in new],
    )


def test_tables_journal_is_ignored() -> None:
    t = JournalTracker([("ks", "-80")])
    j = journal(1, ["-80"], ["-40"], binlogdata.MigrationType.TABLES)
    assert not t.concerns(j, ("ks", "-80"))


def test_no_participant_in_the_stream_is_ignored() -> None:
    t = JournalTracker([("ks", "-80"), ("ks", "80-")])
    assert not t.concerns(journal(1, ["-20", "20-40"], ["-40"]), ("ks", "-80"))


@pytest.mark.parametrize("order", [["-20", "20-40"], ["20-40", "-20"]])
def test_partial_match_is_an_internal_error(order: list[str]) -> None:
    t = JournalTracker([("ks", "-20"), ("ks", "40-")])
    with pytest.raises(VStreamError) as info:
        t.concerns(journal(1, order, ["-40"]), ("ks", "-20"))
    assert info.value.code == Code.INTERNAL
    assert "not all journaling participants are in the stream" in info.value.message


def test_many_to_one_converges_on_the_last_arrival() -> None:
    t = JournalTracker([("ks", "-20"), ("ks", "20-40"), ("other", "0")])
    j = journal(5, ["-20", "20-40"], ["-40"])
    assert t.concerns(j, ("ks", "20-40"))
    assert not t.arrive(j, ("ks", "20-40"))
    assert t.concerns(j, ("ks", "-20"))
    assert t.arrive(j, ("ks", "-20"))
    assert t.participants(j) == [("ks", "-20"), ("ks", "20-40")]
    new = t.converge(j)
    assert [(s.shard, s.gtid) for s in new] == [("-40", "g-40")]
    assert t.shards == [("other", "0"), ("ks", "-40")]


def test_one_to_many() -> None:
    t = JournalTracker([("ks", "-20")])
    j = journal(2, ["-20"], ["-10", "10-20"])
    assert t.concerns(j, ("ks", "-20"))
    assert t.arrive(j, ("ks", "-20"))
    assert [s.shard for s in t.converge(j)] == ["-10", "10-20"]
    assert t.shards == [("ks", "-10"), ("ks", "10-20")]


# -- the heartbeat rule: a participant that started past its journal ----------


def test_passed_names_the_journal_once_another_participant_arrived() -> None:
    t = JournalTracker([("ks", "-20"), ("ks", "20-40")])
    j = journal(5, ["-20", "20-40"], ["-40"])
    assert t.passed(("ks", "20-40")) is None  # no journal seen yet
    assert t.concerns(j, ("ks", "-20"))
    # Seen, but no one has arrived: a heartbeat now proves nothing.
    assert t.passed(("ks", "20-40")) is None
    assert not t.arrive(j, ("ks", "-20"))
    assert t.passed(("ks", "20-40")) is j
    assert t.arrive(j, ("ks", "20-40"))  # it arrives as if it had read the journal
    assert [s.shard for s in t.converge(j)] == ["-40"]
    assert t.passed(("ks", "20-40")) is None  # converged: nothing open any more


def test_passed_needs_a_heartbeat_from_after_the_journal_was_written() -> None:
    # A heartbeat sent before the reshard stopped writes may reach the gateway
    # late, ahead of writes the old shard still has to send: only one from a
    # later second than the journal counts.
    t = JournalTracker([("ks", "-20"), ("ks", "20-40")])
    j = journal(5, ["-20", "20-40"], ["-40"])
    assert t.concerns(j, ("ks", "-20"))
    assert not t.arrive(j, ("ks", "-20"), written_at=1_700_000_010)
    assert t.passed(("ks", "20-40"), heard_at=1_700_000_009) is None
    assert t.passed(("ks", "20-40"), heard_at=1_700_000_010) is None  # the same second
    assert t.passed(("ks", "20-40"), heard_at=1_700_000_011) is j


def test_the_earliest_write_time_read_is_the_bound() -> None:
    # Every journal of a reshard is written after writes stopped: the earliest
    # one read is enough to show a heartbeat came after that.
    t = JournalTracker([("ks", "-20"), ("ks", "20-30"), ("ks", "30-40")])
    j = journal(6, ["-20", "20-30", "30-40"], ["-40"])
    assert t.concerns(j, ("ks", "-20"))
    assert not t.arrive(j, ("ks", "-20"), written_at=120)
    assert not t.arrive(j, ("ks", "20-30"), written_at=100)
    assert t.passed(("ks", "30-40"), heard_at=101) is j


def test_passed_is_none_for_the_participant_that_arrived() -> None:
    t = JournalTracker([("ks", "-20"), ("ks", "20-40")])
    j = journal(5, ["-20", "20-40"], ["-40"])
    assert t.concerns(j, ("ks", "-20"))
    assert not t.arrive(j, ("ks", "-20"))
    assert t.passed(("ks", "-20")) is None


def test_passed_is_none_for_a_stream_the_journal_does_not_name() -> None:
    t = JournalTracker([("ks", "-20"), ("ks", "20-40"), ("ks", "40-")])
    j = journal(5, ["-20", "20-40"], ["-40"])
    assert t.concerns(j, ("ks", "-20"))
    assert not t.arrive(j, ("ks", "-20"))
    assert t.passed(("ks", "40-")) is None


def test_passed_with_three_participants_leaves_the_last_arrival_to_converge() -> None:
    t = JournalTracker([("ks", "-20"), ("ks", "20-30"), ("ks", "30-40")])
    j = journal(6, ["-20", "20-30", "30-40"], ["-40"])
    assert t.concerns(j, ("ks", "30-40"))
    assert not t.arrive(j, ("ks", "30-40"))
    assert t.passed(("ks", "-20")) is j
    assert not t.arrive(j, ("ks", "-20"))
    assert t.passed(("ks", "20-30")) is j
    assert t.arrive(j, ("ks", "20-30"))


def test_a_tables_journal_opens_nothing_to_pass() -> None:
    t = JournalTracker([("ks", "-20"), ("ks", "20-40")])
    j = journal(7, ["-20", "20-40"], ["-40"], binlogdata.MigrationType.TABLES)
    assert not t.concerns(j, ("ks", "-20"))
    assert t.passed(("ks", "20-40")) is None


T = binlogdata.VEventType


def _frames(*kinds: binlogdata.VEventType) -> list[Frame]:
    return [frame_of(binlogdata.VEvent(type=kind)) for kind in kinds]


def test_heartbeats_do_not_anchor_a_stream() -> None:
    anchor = StreamAnchor(at_current=False)
    anchor.read(_frames(T.HEARTBEAT))
    anchor.read(_frames(T.HEARTBEAT, T.HEARTBEAT))
    assert not anchor.anchored
    anchor.read(_frames(T.BEGIN, T.ROW))  # part of a transaction is the binlog too
    assert anchor.anchored
    anchor.read(_frames(T.HEARTBEAT))
    assert anchor.anchored  # for good


def test_a_current_start_is_not_the_binlog() -> None:
    anchor = StreamAnchor(at_current=True)
    anchor.read(_frames(T.HEARTBEAT))
    anchor.read(_frames(T.GTID, T.OTHER))
    anchor.read(_frames(T.HEARTBEAT))
    assert not anchor.anchored
    anchor.read(_frames(T.GTID, T.OTHER))  # a second one is an OTHER of the binlog
    assert anchor.anchored


def test_a_current_start_with_events_after_it_anchors() -> None:
    anchor = StreamAnchor(at_current=True)
    anchor.read(_frames(T.GTID, T.OTHER, T.BEGIN, T.ROW, T.GTID, T.COMMIT))
    assert anchor.anchored


def test_a_position_start_counts_its_first_other() -> None:
    anchor = StreamAnchor(at_current=False)
    anchor.read(_frames(T.GTID, T.OTHER))
    assert anchor.anchored


def test_a_journal_anchors() -> None:
    anchor = StreamAnchor(at_current=True)
    anchor.read(_frames(T.GTID, T.OTHER))
    anchor.read(_frames(T.BEGIN, T.JOURNAL, T.GTID, T.COMMIT))
    assert anchor.anchored
