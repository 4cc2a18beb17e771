"""Rows to shards: a keyspace id per primary key, and shard key ranges.

Keyspace ids are what Vitess's own vindexes would give, so a row lands on the
shard a real cluster would put it on:

- an integer primary key (one column): the ``hash`` vindex, DES under an
  all-zero key of the value as a big-endian unsigned 64-bit number (a
  negative value as its two's complement, as Vitess does);
- any other one-column key: the ``binary_md5`` vindex, MD5 of its bytes;
- a key of several columns (no single Vitess vindex applies): the first 8
  bytes of BLAKE2b over the values, length-prefixed.

A row belongs to the one serving shard whose key range contains its id.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from vsmux.sources._simulated.des import des_encrypt_block
from vsmux.topology import KeyRange, partition_problem

__all__ = ["check_partition", "hash_vindex", "keyspace_id", "shard_for"]

_ZERO_KEY = bytes(8)
_UINT64 = (1 << 64) - 1


def hash_vindex(number: int) -> bytes:
    """Vitess's ``hash`` vindex: the keyspace id of a 64-bit integer."""
    if not -(1 << 63) <= number <= _UINT64:
        raise ValueError(f"{number} does not fit 64 bits")
    return des_encrypt_block(_ZERO_KEY, (number & _UINT64).to_bytes(8, "big"))


def _integer(value: bytes) -> int | None:
    """``value`` as an integer if it is one in MySQL's text form (no sign of +, no spaces)."""
    text = value[1:] if value[:1] == b"-" else value
    if not text.isdigit() or not text.isascii():
        return None
    number = int(value)
    return number if -(1 << 63) <= number <= _UINT64 else None


# Keys repeat (every update and delete of a row), and DES in Python costs ~50 us.
@lru_cache(maxsize=65536)
def keyspace_id(key: tuple[bytes, ...]) -> bytes:
    """The keyspace id of a row with primary-key values ``key`` (see the module doc)."""
    if len(key) == 1:
        number = _integer(key[0])
        if number is not None:
            return hash_vindex(number)
        return hashlib.md5(key[0], usedforsecurity=False).digest()
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
