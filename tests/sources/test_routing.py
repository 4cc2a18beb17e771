"""Row routing in the simulated cluster: Vitess's own vindexes, checked against known ids."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vsmux.sources._simulated.des import des_encrypt_block
from vsmux.sources._simulated.routing import hash_vindex, keyspace_id


@pytest.mark.parametrize(
    ("key", "block", "expected"),
    [
        # The worked example of the DES standard's tutorials, and the all-zero vector.
        ("133457799bbcdff1", "0123456789abcdef", "85e813540f0ab405"),
        ("0000000000000000", "0000000000000000", "8ca64de9c1b123a7"),
    ],
)
def test_des_matches_published_vectors(key: str, block: str, expected: str) -> None:
    assert des_encrypt_block(bytes.fromhex(key), bytes.fromhex(block)).hex() == expected


def test_hash_vindex_gives_vitess_keyspace_ids() -> None:
    # The ids Vitess's own hash vindex tests and docs list for 1 and 2.
    assert hash_vindex(1).hex() == "166b40b44aba4bd6"
    assert hash_vindex(2).hex() == "06e7ea22ce92708f"
    assert hash_vindex(-1) == hash_vindex(2**64 - 1)  # int64 as its two's complement
    with pytest.raises(ValueError):
        hash_vindex(2**64)


def test_keyspace_id_picks_the_vindex_by_key_shape() -> None:
    assert keyspace_id((b"1",)) == hash_vindex(1)
    assert keyspace_id((b"-5",)) == hash_vindex(-5)
    assert keyspace_id((b"sku-1",)) == hashlib.md5(b"sku-1").digest()  # binary_md5
    assert keyspace_id((b"+1",)) == hashlib.md5(b"+1").digest()  # not MySQL's integer text
    composite = keyspace_id((b"1", b"2"))
    assert len(composite) == 8 and composite != keyspace_id((b"12",))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_hash_vindex_is_a_permutation_of_64_bit_ids(number: int) -> None:
    ksid = hash_vindex(number)
    assert len(ksid) == 8
    assert keyspace_id((str(number).encode(),)) == ksid
    if number:
        assert hash_vindex(number - 1) != ksid
