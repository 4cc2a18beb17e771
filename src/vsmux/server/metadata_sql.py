"""Recognise the few metadata queries CDC clients send to ``Execute``.

Pure and synchronous. :func:`parse_metadata_query` accepts what Debezium and
operators send before streaming (docs/vitess.md 11.1), tolerating leading
``/* ... */`` comments (``/*vt+ WORKLOAD_NAME=debezium */``), any case, extra
whitespace and a trailing ``;``. Anything else returns ``None``: the gateway
is not a SQL engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_METADATA_SQL",
    "LikePattern",
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


# What str.strip() removes, and ";": stripped in one C call (a loop removing one
# ";" at a time copied the rest each time, quadratic in a run of " ;").
_TRAILING = ";" + "".join(chr(c) for c in range(0x3001) if chr(c).isspace())

# The longest SQL read as a metadata query. Those are short (a LIKE pattern is
# at most --max-pattern-bytes); anything longer is answered UNIMPLEMENTED at
# once, which keeps the regular expressions below from spending a second on
# a 4 MiB query of blanks or quotes (they are linear, but not free).
MAX_METADATA_SQL = 64 * 1024


def _clean(sql: str) -> str:
    return _LEADING_COMMENTS.sub("", sql, count=1).strip().rstrip(_TRAILING)


def _unquote(text: str, quote: str) -> str:
    # SQL string literal: a doubled quote or a backslash escape stands for itself.
    text = text.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", text)


def parse_metadata_query(sql: str) -> MetadataQuery | None:
    """The metadata query ``sql`` asks, or None if it is not one vsmux answers.

    None for anything over :data:`MAX_METADATA_SQL` characters.
    """
    if len(sql) > MAX_METADATA_SQL:
        return None
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


# One LIKE segment: characters (lower-cased), None standing for ``_``.
_Segment = tuple[str | None, ...]


class LikePattern:
    """A compiled SQL ``LIKE`` pattern: ``%`` any run, ``_`` one character, ``\\`` escapes.

    Case-insensitive, as vtgate's utf8mb4_general_ci. Matching is greedy over
    the ``%``-separated segments (the leftmost place for each middle segment
    is always a safe choice), so it never backtracks over earlier segments:
    compiling is linear in the pattern, and a match costs at most
    ``len(value) * longest segment``, whatever the number of ``%``. (A
    regular expression with one ``.*`` per ``%`` backtracks exponentially on a
    pattern such as 24 ``%`` then ``x``.)
    """

    __slots__ = ("_segments",)

    def __init__(self, pattern: str) -> None:
        segments: list[_Segment] = []
        current: list[str | None] = []
        i = 0
        while i < len(pattern):
            ch = pattern[i]
            if ch == "\\" and i + 1 < len(pattern):
                current.append(pattern[i + 1].lower())
                i += 2
                continue
            if ch == "%":
                segments.append(tuple(current))
                current = []
            else:
                current.append(None if ch == "_" else ch.lower())
            i += 1
        segments.append(tuple(current))
        # Empty middle segments ("%%") change nothing; keep the first and last
        # (empty when the pattern starts or ends with "%").
        if len(segments) > 2:
            segments = [segments[0], *(s for s in segments[1:-1] if s), segments[-1]]
        self._segments = segments

    def matches(self, value: str) -> bool:
        chars = [ch.lower() for ch in value]
        segments = self._segments
        if len(segments) == 1:
            return len(segments[0]) == len(chars) and _fits(segments[0], chars, 0)
        first, last = segments[0], segments[-1]
        end = len(chars) - len(last)
        if len(first) > end or not _fits(first, chars, 0) or not _fits(last, chars, end):
            return False
        pos = len(first)
        for segment in segments[1:-1]:
            found = _find(segment, chars, pos, end)
            if found < 0:
                return False
            pos = found + len(segment)
        return True


def _fits(segment: _Segment, chars: list[str], at: int) -> bool:
    for offset, want in enumerate(segment):
        if want is not None and chars[at + offset] != want:
            return False
    return True


def _find(segment: _Segment, chars: list[str], start: int, end: int) -> int:
    """The leftmost place in ``chars[start:end]`` where ``segment`` fits, or -1."""
    for at in range(start, end - len(segment) + 1):
        if _fits(segment, chars, at):
            return at
    return -1


def like_matches(pattern: str, value: str) -> bool:
    """SQL ``LIKE``: ``%`` any run, ``_`` one character, ``\\`` escapes; case-insensitive.

    Compile with :class:`LikePattern` to match many values against one pattern.
    """
    return LikePattern(pattern).matches(value)


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
