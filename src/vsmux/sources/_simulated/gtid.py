"""MySQL56 GTID sets: parse, format, compare.

A position such as ``MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,...`` is
a flavor prefix and a set of ``uuid:interval[:interval]`` groups. The
simulated tablets issue single-uuid sets ``<uuid>:1-N``; parsing accepts any
well-formed set so that foreign positions are recognised (and rejected) with a
clear message rather than a parse error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vsmux.core.quoting import quote

__all__ = ["FLAVOR", "GtidParseError", "GtidSet"]

FLAVOR = "MySQL56"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class GtidParseError(ValueError):
    """Text that is not a MySQL56 GTID set."""


@dataclass(frozen=True, slots=True)
class GtidSet:
    """uuid -> sorted, non-overlapping closed intervals of transaction numbers."""

    intervals: dict[str, tuple[tuple[int, int], ...]]

    @classmethod
    def single(cls, uuid: str, last: int) -> GtidSet:
        """``uuid:1-last`` (the empty set for ``last == 0``)."""
        return cls({uuid: ((1, last),)} if last > 0 else {})

    @classmethod
    def parse(cls, text: str) -> GtidSet:
        """Parse ``MySQL56/<set>`` (the prefix is required)."""
        flavor, sep, body = text.partition("/")
        if not sep or flavor != FLAVOR:
            raise GtidParseError(f"position {quote(text)} is not a {FLAVOR}/<gtid set> position")
        result: dict[str, list[tuple[int, int]]] = {}
        for group in filter(None, (g.strip() for g in body.split(","))):
            uuid, *ranges = group.split(":")
            if not _UUID.match(uuid) or not ranges:
                raise GtidParseError(f"bad GTID group {quote(group)}")
            spans = result.setdefault(uuid.lower(), [])
            for span in ranges:
                lo, _, hi = span.partition("-")
                try:
                    start, end = int(lo), int(hi or lo)
                except ValueError:
                    raise GtidParseError(f"bad interval {quote(span)} of {quote(uuid)}") from None
                if start < 1 or end < start:
                    raise GtidParseError(f"bad interval {quote(span)} of {quote(uuid)}")
                spans.append((start, end))
        return cls({u: _merge(s) for u, s in result.items()})

    def last_of(self, uuid: str) -> int:
        """N if the set holds exactly ``uuid:1-N`` for ``uuid``; 0 if none; else -1."""
        spans = self.intervals.get(uuid, ())
        if not spans:
            return 0
        if len(spans) == 1 and spans[0][0] == 1:
            return spans[0][1]
        return -1

    def contains(self, other: GtidSet) -> bool:
        """True if every transaction of ``other`` is in this set."""
        for uuid, spans in other.intervals.items():
            mine = self.intervals.get(uuid, ())
            for lo, hi in spans:
                if not any(a <= lo and hi <= b for a, b in mine):
                    return False
        return True

    def __str__(self) -> str:
        groups = []
        for uuid in sorted(self.intervals):
            parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in self.intervals[uuid]]
            groups.append(":".join([uuid, *parts]))
        return f"{FLAVOR}/" + ",".join(groups)


def _merge(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)
