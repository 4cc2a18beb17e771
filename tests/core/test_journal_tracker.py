"""Journal convergence bookkeeping: TABLES, none, partial, all participants."""

from __future__ import annotations

import pytest

from vsmux.core.journal import JournalTracker
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata

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
