"""SQLite checkpoints and the VGtid JSON form."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.client.events import KS, row, vgtid
from vsmux.client.checkpoint import (
    CheckpointError,
    CheckpointStore,
    vgtid_from_json,
    vgtid_to_json,
)
from vsmux.proto import binlogdata, query

COPYING = binlogdata.VGtid(
    shard_gtids=[
        binlogdata.ShardGtid(
            keyspace=KS,
            shard="-80",
            gtid="MySQL56/u:1-3",
            table_p_ks=[
                binlogdata.TableLastPk(
                    table_name="customer",
                    lastpk=query.QueryResult(
                        fields=[query.Field(name="id", type=query.Type.INT64)],
                        rows=[row([b"42"])],
                    ),
                )
            ],
        ),
        binlogdata.ShardGtid(keyspace=KS, shard="80-", gtid=""),
    ]
)


def test_json_round_trip_with_table_p_ks() -> None:
    as_json = vgtid_to_json(COPYING)
    assert as_json[1] == {"keyspace": KS, "shard": "80-", "gtid": "", "table_p_ks": []}
    assert as_json[0]["table_p_ks"][0]["table_name"] == "customer"
    assert as_json[0]["table_p_ks"][0]["lastpk"]["rows"] == [{"lengths": ["2"], "values": "NDI="}]
    assert vgtid_from_json(as_json) == COPYING
    import json

    assert vgtid_from_json(json.dumps(as_json)) == COPYING


def test_accepts_debezium_style_minimal_entries() -> None:
    parsed = vgtid_from_json('[{"keyspace":"commerce","shard":"-80","gtid":"current"}]')
    assert parsed == vgtid(("-80", "current"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "non-empty JSON list"),
        ('{"keyspace": "x"}', "non-empty JSON list"),
        ("[1]", "entry 0 is not an object"),
        ('[{"shard": "-80"}]', "entry 0 has no keyspace"),
        ('[{"keyspace": "k", "gtid": 5}]', "'gtid' must be a string"),
        ('[{"keyspace": "k", "table_p_ks": {}}]', "'table_p_ks' must be a list"),
    ],
)
def test_bad_positions_are_explained(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        vgtid_from_json(text)


def test_store_one_row_per_client_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    with CheckpointStore(path) as store:
        assert store.load("a") is None
        store.save("a", vgtid(("-80", "MySQL56/u:1-1")))
        store.save("b", COPYING)
        store.save("a", vgtid(("-80", "MySQL56/u:1-2")))
    # A fresh connection (another process) sees the committed values.
    with CheckpointStore(path) as again:
        assert again.load("a") == vgtid(("-80", "MySQL56/u:1-2"))
        assert again.load("b") == COPYING
        again.delete("b")
        assert again.load("b") is None
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT count(*) FROM checkpoints").fetchone() == (1,)
    db.close()


def test_save_is_visible_to_other_readers_before_close(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    writer = CheckpointStore(path)
    reader = CheckpointStore(path)
    writer.save("x", vgtid(("-80", "MySQL56/u:1-7")))
    assert reader.load("x") == vgtid(("-80", "MySQL56/u:1-7"))
    writer.close()
    reader.close()


def test_corrupt_checkpoint_names_client_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "cp.db"
    CheckpointStore(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO checkpoints VALUES ('c', 'nope', 0)")
    db.commit()
    db.close()
    with CheckpointStore(path) as store, pytest.raises(CheckpointError) as info:
        store.load("c")
    assert "client id 'c'" in str(info.value) and "--client-id" in str(info.value)


def test_unopenable_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot open checkpoint file"):
        CheckpointStore(tmp_path / "missing-dir" / "cp.db")
