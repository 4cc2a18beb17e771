"""Rows to shards: a keyspace id per primary key, and shard key ranges.

The keyspace id is the first 8 bytes of BLAKE2b over the primary-key values
(a stable hash, not Vitess's DES-based ``hash`` vindex); a row belongs to the
one serving shard whose key range contains it.
"""

from __future__ import annotations

import hashlib

from vsmux.topology.model import KeyRange
from vsmux.topology.toml_loader import partition_problem

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
    return partition_problem(list(shards))
