"""Recognise the few metadata queries CDC clients send to ``Execute``.

Pure and synchronous. :func:`parse_metadata_query` accepts what Debezium and
operators send before streaming (see clients.md), tolerating leading
``/* ... */`` comments (``/*vt+ WORKLOAD_NAME=debezium */``), any case, extra
whitespace and a trailing ``;``. Anything else returns ``None``: the gateway
is not a SQL engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MetadataQuery",
    "ShowDatabases",
    "ShowShards",
    "ShowTables",
    "ShowTablets",
    "Target",
    "like_matches",
    "parse_metadata_query",
    "parse_target",
]


@dataclass(frozen=True, slots=True)
class ShowDatabases:
    """``SHOW DATABASES`` / ``SHOW SCHEMAS``: one row per keyspace."""


@dataclass(frozen=True, slots=True)
class ShowShards:
    """``SHOW VITESS_SHARDS [LIKE 'pattern']``: rows ``ks/shard``."""

    like: str | None = None


@dataclass(frozen=True, slots=True)
class ShowTables:
    """``SHOW TABLES [FROM|IN ks]``; ``keyspace`` None means the session's target."""

    keyspace: str | None = None


@dataclass(frozen=True, slots=True)
class ShowTablets:
    """``SHOW VITESS_TABLETS``: one row per tablet."""


MetadataQuery = ShowDatabases | ShowShards | ShowTables | ShowTablets


@dataclass(frozen=True, slots=True)
class Target:
    """A session target string ``ks[:shard][@type]`` split into its parts."""

    keyspace: str
    shard: str
    tablet_type: str


_LEADING_COMMENTS = re.compile(r"^\s*(?:/\*.*?\*/\s*)*", re.DOTALL)
_IDENT = r"(?:`(?P<q>[^`]+)`|(?P<bare>[A-Za-z0-9_$-]+))"
_STRING = r"(?:'(?P<s1>(?:[^'\\]|\\.|'')*)'|\"(?P<s2>(?:[^\"\\]|\\.|\"\")*)\")"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"SHOW\s+(?:DATABASES|SCHEMAS|KEYSPACES)", re.I), "databases"),
    (re.compile(rf"SHOW\s+VITESS_SHARDS(?:\s+LIKE\s+{_STRING})?", re.I), "shards"),
    (re.compile(rf"SHOW\s+(?:FULL\s+)?TABLES(?:\s+(?:FROM|IN)\s+{_IDENT})?", re.I), "tables"),
    (re.compile(r"SHOW\s+VITESS_TABLETS", re.I), "tablets"),
]


def _clean(sql: str) -> str:
    text = _LEADING_COMMENTS.sub("", sql, count=1).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _unquote(text: str, quote: str) -> str:
    # SQL string literal: a doubled quote or a backslash escape stands for itself.
    text = text.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", text)


def parse_metadata_query(sql: str) -> MetadataQuery | None:
    """The metadata query ``sql`` asks, or None if it is not one vsmux answers."""
    text = _clean(sql)
    for pattern, kind in _PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        if kind == "databases":
            return ShowDatabases()
        if kind == "shards":
            if match.group("s1") is not None:
                return ShowShards(_unquote(match.group("s1"), "'"))
            if match.group("s2") is not None:
                return ShowShards(_unquote(match.group("s2"), '"'))
            return ShowShards()
        if kind == "tables":
            return ShowTables(match.group("q") or match.group("bare"))
        return ShowTablets()
    return None


def like_matches(pattern: str, value: str) -> bool:
    """SQL ``LIKE``: ``%`` any run, ``_`` one character, ``\\`` escapes; case-insensitive."""
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


def parse_target(target_string: str) -> Target | None:
    """Split ``ks:shard@type`` (shard and type optional); None when empty."""
    text = target_string.strip()
    if not text:
        return None
    tablet_type = ""
    if "@" in text:
        text, tablet_type = text.rsplit("@", 1)
    keyspace, _, shard = text.partition(":")
    return Target(keyspace.strip("`"), shard, tablet_type.lower())
