"""Rows to shards: a keyspace id per primary key, and shard key ranges.

The keyspace id is the first 8 bytes of BLAKE2b over the primary-key values
(a stable hash, not Vitess's DES-based ``hash`` vindex); a row belongs to the
one serving shard whose key range contains it.
"""

from __future__ import annotations

import hashlib

from vsmux.topology.model import KeyRange

__all__ = ["check_partition", "keyspace_id", "shard_for"]


def keyspace_id(key: tuple[bytes, ...]) -> bytes:
    digest = hashlib.blake2b(digest_size=8)
    for value in key:
        digest.update(len(value).to_bytes(4, "big"))
        digest.update(value)
    return digest.digest()


def shard_for(key: tuple[bytes, ...], shards: list[tuple[str, KeyRange]]) -> str:
    ksid = keyspace_id(key)
    for name, key_range in shards:
        if key_range.contains(ksid):
            return name
    raise LookupError(f"no shard covers keyspace id {ksid.hex()}")


def check_partition(shards: list[str]) -> str | None:
    """None if ``shards`` cover the whole key space exactly once, else why not."""
    if not shards:
        return "no shards"
    parsed: list[tuple[KeyRange, str]] = []
    for name in shards:
        try:
            parsed.append((KeyRange.parse(name), name))
        except ValueError as exc:
            return str(exc)
    parsed.sort(key=lambda item: item[0].start)
    expected: bytes | None = b""  # None: the key space is already fully covered
    for key_range, name in parsed:
        if expected is None or key_range.start < expected:
            return f"shard {name!r} overlaps the shard before it"
        if key_range.start > expected:
            return f"key range gap before shard {name!r} (nothing covers {expected.hex()!r})"
        if key_range.end and key_range.end <= key_range.start:
            return f"shard {name!r} is an empty key range"
        expected = key_range.end or None
    if expected is not None:
        return f"key range gap after {expected.hex()!r}: the last shard must end unbounded"
    return None
