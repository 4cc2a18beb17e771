"""The liveness rule's words: the error a hung request ends with.

The Trio layer decides *when* (no event, heartbeats included, from any tablet
for ``settings.liveness_timeout``); this module says *what*, in the text
operators grep for, with the duration written as Go writes it (``10m0s``).
"""

from __future__ import annotations

from vsmux.errors import Code, VStreamError

__all__ = ["go_duration", "hung_error"]


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String`` writes it: 10m0s, 1.5s, 250ms."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def hung_error(timeout: float) -> VStreamError:
    return VStreamError(
        Code.UNAVAILABLE,
        "vstream is fully throttled or otherwise hung: vstream failed liveness checks as "
        "there was no activity, including heartbeats, within the last "
        f"{go_duration(timeout)}",
    )
