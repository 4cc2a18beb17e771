"""Parsing of the metadata queries CDC clients send to Execute."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsmux.server.metadata_sql import (
    MAX_METADATA_SQL,
    LikePattern,
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


def _like_by_regex(pattern: str, value: str) -> bool:
    """The former matcher: one regex per pattern (exponential on many %)."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), value, re.I | re.DOTALL) is not None


_LIKE_ALPHABET = st.sampled_from(["a", "b", "A", "%", "_", "\\", "/", "-"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_LIKE_ALPHABET, max_size=10).map("".join),
    st.lists(_LIKE_ALPHABET, max_size=10).map("".join),
)
def test_like_agrees_with_the_regex_translation(pattern: str, value: str) -> None:
    assert like_matches(pattern, value) == _like_by_regex(pattern, value)


def test_like_with_many_percent_signs_is_fast() -> None:
    # 24 % then x took minutes with the regex translation (16 % took 1-12 s).
    started = time.perf_counter()
    pattern = LikePattern("%" * 24 + "x")
    for name in ("commerce/-80", "commerce/80-", "c" * 300):
        assert not pattern.matches(name)
    assert LikePattern("%a" * 200 + "%x").matches("a" * 300 + "x")
    assert not LikePattern("%a" * 200 + "%x").matches("a" * 300)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "sql",
    [
        "SHOW DATABASES" + " ;" * 2_000_000,  # was quadratic: one ";" stripped per copy
        "SHOW " + " " * 4_000_000 + "x",
        "SHOW VITESS_SHARDS LIKE '" + "''" * 2_000_000,
        "/**/ " * 800_000 + "SHOW DATABASES",
    ],
    ids=["trailing-semicolons", "blanks", "quotes", "comments"],
)
def test_hostile_queries_are_answered_at_once(sql: str) -> None:
    started = time.perf_counter()
    assert parse_metadata_query(sql) is None  # over MAX_METADATA_SQL: not a metadata query
    parse_metadata_query(sql[:MAX_METADATA_SQL])  # the longest that is parsed
    assert time.perf_counter() - started < 2.0


def test_trailing_semicolons_and_blanks_go() -> None:
    assert parse_metadata_query("SHOW DATABASES ; ;\u3000;\n") == ShowDatabases()
