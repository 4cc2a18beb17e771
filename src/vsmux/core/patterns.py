"""Client-supplied regular expressions, compiled with RE2 as Vitess's Go regexp would be.

Keyspace selectors (``/regex``) and table filter rules come from clients.
RE2 matches in time linear in the text whatever the pattern (Python's ``re``
can take exponential time on ``(a+)+$``), and its syntax is Go's. RE2
writes every pattern it refuses to stderr by default; a client's pattern
must not reach the process's output, so that is turned off.
"""

from __future__ import annotations

from typing import Any

import re2  # type: ignore[import-untyped]

__all__ = ["PatternError", "compile_pattern"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


class PatternError(ValueError):
    """A pattern RE2 refuses; the message is RE2's reason."""


def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2; :class:`PatternError` with RE2's reason if it is refused."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as err:
        first = err.args[0] if err.args else str(err)
        reason = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
        raise PatternError(reason) from None
