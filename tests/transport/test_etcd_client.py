"""The etcd client against a real etcd: reads, writes, watches, a dead server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.transport.etcd_server import EtcdServer, running_etcd
from vsmux.errors import Code, VStreamError
from vsmux.transport import KeyChange, open_etcd
from vsmux.transport._etcd import prefix_end


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    with running_etcd(tmp_path) as server:
        yield server


def test_prefix_end() -> None:
    assert prefix_end(b"/vitess/") == b"/vitess0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"") == b"\x00"


async def test_put_get_prefix_delete(aio_loop: None, etcd_server: EtcdServer) -> None:
    async with open_etcd(etcd_server.address) as etcd:
        first = await etcd.put(b"/root/a", b"1")
        await etcd.put(b"/root/b/c", b"\x00\xff")
        await etcd.put(b"/rootless", b"x")
        snapshot = await etcd.get_prefix(b"/root/")
        assert snapshot.values == {b"/root/a": b"1", b"/root/b/c": b"\x00\xff"}
        assert snapshot.revision > first
        assert await etcd.delete(b"/root/", prefix=True) == 2
        assert (await etcd.get_prefix(b"/root/")).values == {}


async def test_watch_sees_puts_and_deletes_in_order(
    aio_loop: None, etcd_server: EtcdServer
) -> None:
    async with open_etcd(etcd_server.address) as etcd:
        start = await etcd.put(b"/w/before", b"0")
        async with etcd.watch_prefix(b"/w/", start + 1) as next_changes:
            await etcd.put(b"/w/x", b"1")
            await etcd.put(b"/elsewhere", b"-")
            await etcd.delete(b"/w/before")
            seen: list[KeyChange] = []
            with trio.fail_after(5):
                while len(seen) < 2:
                    seen.extend(await next_changes())
        assert [(c.key, c.value) for c in seen] == [(b"/w/x", b"1"), (b"/w/before", None)]
        assert seen[0].revision < seen[1].revision


async def test_watch_from_an_old_revision_replays_history(
    aio_loop: None, etcd_server: EtcdServer
) -> None:
    async with open_etcd(etcd_server.address) as etcd:
        first = await etcd.put(b"/h/a", b"1")
        await etcd.put(b"/h/a", b"2")
        async with etcd.watch_prefix(b"/h/", first) as next_changes:
            with trio.fail_after(5):
                changes = await next_changes()
        assert [c.value for c in changes] == [b"1", b"2"]


async def test_a_stopped_etcd_ends_the_watch_unavailable(
    aio_loop: None, etcd_server: EtcdServer
) -> None:
    async with open_etcd(etcd_server.address) as etcd:
        revision = await etcd.put(b"/s/a", b"1")
        async with etcd.watch_prefix(b"/s/", revision + 1) as next_changes:
            etcd_server.stop()
            with trio.fail_after(5), pytest.raises(VStreamError) as caught:
                await next_changes()
    assert caught.value.code == Code.UNAVAILABLE
    assert etcd_server.address in caught.value.message


async def test_an_unreachable_etcd_is_unavailable(aio_loop: None, etcd_server: EtcdServer) -> None:
    etcd_server.stop()
    async with open_etcd(etcd_server.address) as etcd:
        with trio.fail_after(10), pytest.raises(VStreamError) as caught:
            await etcd.get_prefix(b"/")
    assert caught.value.code == Code.UNAVAILABLE
    assert f"etcd at {etcd_server.address}" in caught.value.message
    # Named once, and not taken for a tablet.
    assert caught.value.message.count(etcd_server.address) == 1
    assert "tablet" not in caught.value.message


async def test_a_bad_address_is_invalid_argument(aio_loop: None) -> None:
    with pytest.raises(VStreamError) as caught:
        async with open_etcd("no-port"):
            pass  # pragma: no cover
    assert caught.value.code == Code.INVALID_ARGUMENT


async def test_a_watch_on_a_frozen_etcd_ends_by_keepalive(
    aio_loop: None, etcd_server: EtcdServer
) -> None:
    """A partition leaves the connection open and silent: the unanswered ping ends it."""
    async with open_etcd(etcd_server.address, keepalive=0.5) as etcd:
        revision = await etcd.put(b"/p/a", b"1")
        async with etcd.watch_prefix(b"/p/", revision + 1) as next_changes:
            etcd_server.pause()
            try:
                with trio.fail_after(5), pytest.raises(VStreamError) as caught:
                    await next_changes()
            finally:
                etcd_server.resume()
    assert caught.value.code == Code.UNAVAILABLE
