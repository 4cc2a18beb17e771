"""Which tables a VStream filter selects, as a vttablet reads the rules.

A rule's ``match`` is a table name, or ``/regex`` (searched, unanchored, like
Go's ``regexp.MatchString``). The expression is RE2, the syntax of the Go
regexp a vttablet uses: matching takes time linear in the table name whatever
the client's pattern, and backreferences and lookarounds are refused. Its
``filter`` may be empty or ``select * from <table>``; column lists and WHERE
clauses are not simulated and are rejected with INVALID_ARGUMENT rather than
silently ignored. A rule that matches no table is not an error. A request
without rules selects every table.
"""

from __future__ import annotations

import re
from typing import Any

from vsmux.core.patterns import PatternError, compile_pattern
from vsmux.core.quoting import quote
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata

__all__ = ["TableFilter"]

# Matched against the rule's filter with surrounding blanks and one trailing
# ";" removed first: a pattern that also had to skip them ("\s*;?\s*$")
# would try every split of a long run of blanks, quadratic in its length.
_SELECT_STAR = re.compile(r"select\s+\*\s+from\s+`?([A-Za-z0-9_$]+)`?", re.IGNORECASE)


# A rule that matches every table (a request without rules).
_EVERY_TABLE = compile_pattern(".*")


def _compile_rule(match: str) -> Any:
    """The RE2 expression of a ``/regex`` rule; INVALID_ARGUMENT if it has none."""
    try:
        return compile_pattern(match.strip("/"))
    except PatternError as err:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"filter rule {quote(match)} is not a valid regular expression: {err}",
        ) from None


def _statement(text: str) -> str:
    """``text`` without surrounding blanks and one trailing ``;`` (and blanks before it)."""
    text = text.strip()
    return text[:-1].rstrip() if text.endswith(";") else text


class TableFilter:
    """A compiled ``binlogdata.Filter``: ``matches(table)``."""

    def __init__(self, rules: list[tuple[Any, str]]) -> None:
        # (matcher, filter): a matcher is a table name (str) or an RE2 expression.
        self._rules = rules
        self._cache: dict[str, bool] = {}

    @classmethod
    def from_request(cls, filter: binlogdata.Filter | None) -> TableFilter:
        """Compile a request's filter; INVALID_ARGUMENT for a rule we cannot honour."""
        if filter is None or not filter.rules:
            return cls([(_EVERY_TABLE, "")])
        rules: list[tuple[Any, str]] = []
        for rule in filter.rules:
            matcher: Any = _compile_rule(rule.match) if rule.match.startswith("/") else rule.match
            text = rule.filter.strip()
            if text:
                selected = _SELECT_STAR.fullmatch(_statement(text))
                if selected is None:
                    raise VStreamError(
                        Code.INVALID_ARGUMENT,
                        f"filter {quote(rule.filter)} for rule {quote(rule.match)} is not "
                        "supported by the simulated tablet: use 'select * from <table>' or "
                        "leave it empty",
                    )
                if isinstance(matcher, str) and selected.group(1) != matcher:
                    raise VStreamError(
                        Code.INVALID_ARGUMENT,
                        f"filter {quote(rule.filter)} selects from {quote(selected.group(1))} "
                        f"but its rule matches table {quote(rule.match)}",
                    )
            rules.append((matcher, text))
        return cls(rules)

    def matches(self, table: str) -> bool:
        hit = self._cache.get(table)
        if hit is None:
            hit = any(
                m == table if isinstance(m, str) else m.search(table) is not None
                for m, _ in self._rules
            )
            self._cache[table] = hit
        return hit
