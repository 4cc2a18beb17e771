"""``host:port`` addresses: the one parser every part of vsmux uses.

A host is a name or an IPv4 address (letters, digits, ``_``, ``.``, ``-``)
or an IPv6 address in brackets (``[::1]``, brackets dropped); the port is a
decimal number up to 65535. Port 0 parses (to listen on any free port); a
caller that needs a real port says so. An empty host parses only when the
caller gives a default for it.
"""

from __future__ import annotations

import re

__all__ = ["AddressError", "split_address"]

_HOST_PORT = re.compile(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]*):([0-9]{1,5})")

_MAX_PORT = 65535


class AddressError(ValueError):
    """Not a ``host:port`` address; the message quotes it and says why."""


def split_address(text: str, *, default_host: str | None = None) -> tuple[str, int]:
    """``(host, port)`` from ``host:port`` or ``[v6]:port``.

    An empty host (``:15991``) becomes ``default_host``, or is an error
    without one. Raises :class:`AddressError`.
    """
    match = _HOST_PORT.fullmatch(text)
    if match is None:
        raise AddressError(f"{text!r} is not host:port")
    host, port = match[1].strip("[]"), int(match[2])
    if not host:
        if default_host is None:
            raise AddressError(f"{text!r} is not host:port")
        host = default_host
    if port > _MAX_PORT:
        raise AddressError(f"port out of range in {text!r}")
    return host, port
