"""Client input, made safe to put in an error message or a log line.

Rules of this module:

- :func:`quote` is the one way client-supplied text (a keyspace, a shard, a
  gtid, SQL, a caller principal, ...) enters an error message or a log line.
  It keeps at most ``limit`` bytes of the input (200 by default) and escapes
  everything that is not printable, so a value cannot forge a log line with a
  newline, cannot smuggle terminal control sequences, and cannot blow up a
  gRPC status header. Its cost depends on ``limit`` only, never on the size of
  the value.
- :func:`cap_message` is the last guard at the gRPC edge: a status message of
  any origin is cut to a size every client accepts in its trailers (common
  clients reject metadata over 16 KiB, and grpc-message is percent-encoded,
  up to three bytes per byte).
"""

from __future__ import annotations

import re

__all__ = ["MESSAGE_LIMIT", "QUOTE_LIMIT", "cap_message", "escape", "mention", "printable", "quote"]

#: Bytes of client input an error message or log line quotes.
QUOTE_LIMIT = 200

#: Bytes of a gRPC status message (before percent-encoding).
MESSAGE_LIMIT = 2048

# Printable ASCII without blanks, quotes or backslashes.
_PLAIN = re.compile(r"[!#-&(-\[\]-~]+")

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    known = _ESCAPES.get(ch)
    if known is not None:
        return known
    if ch.isprintable():
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` with backslash, quote and every non-printable character escaped.

    Linear in ``text``: callers cut first (see :func:`quote`).
    """
    if text.isprintable() and "\\" not in text and "'" not in text:
        return text
    return "".join(map(_escape_char, text))


def _head(value: str, limit: int) -> str:
    """The longest prefix of ``value`` whose UTF-8 encoding fits in ``limit`` bytes."""
    head = value[:limit]  # at least one byte per character, so never too short
    encoded = head.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return head
    return encoded[:limit].decode("utf-8", "ignore")  # drops a split last character


def quote(value: str | bytes, limit: int = QUOTE_LIMIT) -> str:
    """``value`` in single quotes, escaped, cut to ``limit`` bytes of input.

    A cut value says how long it was: ``'kkkk'... (1000000 characters)``
    (bytes for a ``bytes`` value). Bytes that are not UTF-8 show as ``\\xNN``.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        body = escape(raw[:limit].decode("utf-8", "surrogateescape"))
        cut = f"... ({len(raw)} bytes)" if len(raw) > limit else ""
    else:
        head = _head(value, limit)
        body = escape(head)
        cut = f"... ({len(value)} characters)" if len(head) < len(value) else ""
    return f"'{body}'{cut}"


def mention(value: str, limit: int = QUOTE_LIMIT) -> str:
    """``value`` as it reads in a sentence: bare if it is a plain name, else :func:`quote`.

    Plain means short, printable ASCII, and free of blanks, quotes and
    backslashes (the keyspaces, key ranges, positions and regexes of
    well-formed requests), so the usual messages read as vtgate's do, while
    anything else is quoted and cut.
    """
    if len(value) <= limit and _PLAIN.fullmatch(value):
        return value
    return quote(value, limit)


def cap_message(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` cut to at most ``limit`` UTF-8 bytes, marked when cut."""
    if len(message) <= limit // 4:
        return message  # four bytes per character at most: fits for sure
    encoded = message.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return message
    marker = " ... (message cut)"
    head = encoded[: limit - len(marker)].decode("utf-8", "ignore")
    return head + marker


def printable(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` bytes with control characters escaped, for a log line.

    Unlike :func:`quote`, backslashes and quotes stay as they are: this is for
    messages the gateway wrote (which quote client input already) and for
    messages from tablets, where only a line break or a control character
    could do harm.
    """
    head = _head(text, limit)
    if head.isprintable():
        body = head
    else:
        body = "".join(ch if ch.isprintable() else _escape_char(ch) for ch in head)
    return body if len(head) == len(text) else body + " ... (cut)"
