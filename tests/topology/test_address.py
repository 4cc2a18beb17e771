"""The one ``host:port`` parser."""

from __future__ import annotations

import pytest

from vsmux.topology import AddressError, split_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:15991", ("127.0.0.1", 15991)),
        ("tablet-1.zone1_a:80", ("tablet-1.zone1_a", 80)),
        ("[::1]:15991", ("::1", 15991)),
        ("host:0", ("host", 0)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_addresses(text: str, expected: tuple[str, int]) -> None:
    assert split_address(text) == expected


@pytest.mark.parametrize(
    "text", ["nohost", "host:", ":15991", "host:port", "host:123456", "a b:1", "[::1:1"]
)
def test_not_addresses(text: str) -> None:
    with pytest.raises(AddressError, match=r" is not host:port$"):
        split_address(text)


def test_an_empty_host_takes_the_default() -> None:
    assert split_address(":9102", default_host="127.0.0.1") == ("127.0.0.1", 9102)
    assert split_address("[::]:9102", default_host="127.0.0.1") == ("::", 9102)


def test_a_port_beyond_65535_is_out_of_range() -> None:
    with pytest.raises(AddressError, match=r"^port out of range in 'host:65536'$"):
        split_address("host:65536")
