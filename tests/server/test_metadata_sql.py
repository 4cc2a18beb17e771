"""Parsing of the metadata queries CDC clients send to Execute."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsmux.server.metadata_sql import (
    ShowDatabases,
    ShowShards,
    ShowTables,
    ShowTablets,
    Target,
    like_matches,
    parse_metadata_query,
    parse_target,
)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SHOW DATABASES", ShowDatabases()),
        ("/*vt+ WORKLOAD_NAME=debezium */ SHOW DATABASES", ShowDatabases()),
        ("  show   databases ;  ", ShowDatabases()),
        ("/* a */ /* b */\nShow Schemas;", ShowDatabases()),
        ("SHOW VITESS_SHARDS", ShowShards()),
        (
            "/*vt+ WORKLOAD_NAME=debezium */ SHOW VITESS_SHARDS LIKE 'commerce/%'",
            ShowShards("commerce/%"),
        ),
        ('show vitess_shards like "it\'s/%"', ShowShards("it's/%")),
        ("SHOW VITESS_SHARDS LIKE 'a''b'", ShowShards("a'b")),
        ("SHOW TABLES FROM `commerce`", ShowTables("commerce")),
        ("SHOW TABLES IN commerce;", ShowTables("commerce")),
        ("SHOW FULL TABLES FROM `my-ks`", ShowTables("my-ks")),
        ("SHOW TABLES", ShowTables(None)),
        ("SHOW VITESS_TABLETS", ShowTablets()),
    ],
)
def test_recognised_queries(sql: str, expected: object) -> None:
    assert parse_metadata_query(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "SHOW DATABASES x",
        "SHOW TABLES FROM",
        "DROP TABLE customer",
        "SHOW VITESS_SHARDS LIKE commerce",
        "",
        "/* unterminated SHOW DATABASES",
    ],
)
def test_everything_else_is_not_a_metadata_query(sql: str) -> None:
    assert parse_metadata_query(sql) is None


def test_like_patterns() -> None:
    assert like_matches("commerce/%", "commerce/-80")
    assert like_matches("COMMERCE/%", "commerce/80-")
    assert not like_matches("commerce/%", "customer/-80")
    assert like_matches("c_mmerce/-80", "commerce/-80")
    assert not like_matches("c_mmerce/-80", "cmmerce/-80")
    assert like_matches("100\\%", "100%")
    assert not like_matches("100\\%", "1000")
    assert like_matches("a.b", "a.b") and not like_matches("a.b", "axb")


@settings(max_examples=50)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20))
def test_like_without_wildcards_is_equality(text: str) -> None:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    assert like_matches(escaped, text)
    assert not like_matches(escaped, text + "x")


def test_targets() -> None:
    assert parse_target("commerce:-80@primary") == Target("commerce", "-80", "primary")
    assert parse_target("commerce@REPLICA") == Target("commerce", "", "replica")
    assert parse_target("commerce") == Target("commerce", "", "")
    assert parse_target("") is None
