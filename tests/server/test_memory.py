"""Memory goes back after sessions end: the policy's timing and what a release frees."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
import trio
import trio.testing
import trio_asyncio
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler
from grpclib.exceptions import StreamTerminatedError

from vsmux.core import positions
from vsmux.core.metrics import Metrics
from vsmux.core.positions import PositionBook
from vsmux.proto import binlogdata
from vsmux.server.memory import (
    MEMORY_RELEASES,
    ReleasePolicy,
    release_memory,
    return_memory,
)
from vsmux.transport import SESSIONS_ENDED, drop_finished_calls, open_grpc_server
from vsmux.transport._bridge import pump_responses
from vsmux.transport._codec import RawCodec, RawMessage
from vsmux.wire import frame_of

# -- the policy (pure) ---------------------------------------------------------


def test_nothing_is_due_before_any_session_ended() -> None:
    policy = ReleasePolicy(settle=2, min_interval=30, max_wait=30)
    for now in range(100):
        policy.observe(float(now), 0)
        assert not policy.due(float(now))


def test_due_once_the_count_has_settled() -> None:
    policy = ReleasePolicy(settle=2, min_interval=30, max_wait=30)
    policy.observe(10.0, 3)  # three sessions ended
    assert not policy.due(10.0)
    policy.observe(11.0, 50)  # the rest of the burst
    assert not policy.due(12.9)
    policy.observe(13.0, 50)
    assert policy.due(13.0)  # unchanged for 2 s
    policy.released(13.0)
    policy.observe(14.0, 50)
    assert not policy.due(60.0)  # nothing new ended


def test_releases_are_at_least_min_interval_apart() -> None:
    policy = ReleasePolicy(settle=2, min_interval=30, max_wait=30)
    policy.observe(0.0, 1)
    assert policy.due(2.0)
    policy.released(2.0)
    policy.observe(5.0, 2)
    assert not policy.due(10.0)
    assert not policy.due(31.9)
    assert policy.due(32.0)


def test_busy_gateway_still_releases_within_max_wait() -> None:
    # Sessions end every second: the count never settles.
    policy = ReleasePolicy(settle=2, min_interval=10, max_wait=20)
    due_at = None
    for second in range(100, 200):
        policy.observe(float(second), second)
        if policy.due(float(second)):
            due_at = second
            break
    assert due_at == 120  # the first end was seen at 100


def test_after_linger_waits_for_the_linger_then_settles() -> None:
    # Feeds and health watches close 5 s after the last session; what they
    # hold is garbage only then.
    policy = ReleasePolicy.after_linger(5.0)
    policy.observe(10.0, 50)  # the burst of leaving sessions
    assert not policy.due(16.9)
    assert policy.due(17.0)
    assert ReleasePolicy.after_linger(0.0).settle == ReleasePolicy().settle


async def test_return_memory_releases_after_sessions_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()
    releases: list[float] = []

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: return_memory([], metrics, ReleasePolicy(2, 30, 30), poll=1.0))
        await trio.sleep(10)
        assert metrics.gateway[MEMORY_RELEASES] == 0
        start = trio.current_time()
        metrics.gateway[SESSIONS_ENDED] += 50
        while metrics.gateway[MEMORY_RELEASES] == 0:  # noqa: ASYNC110 - a counter, polled
            await trio.sleep(0.5)
        releases.append(trio.current_time() - start)
        nursery.cancel_scope.cancel()
    # Seen at the next poll (<= 1 s), released once unchanged for 2 s.
    assert 2.0 <= releases[0] <= 3.5


# -- what a release frees ----------------------------------------------------------


class _Held:
    """Something a finished call's frames keep alive."""


_refs: list[weakref.ref[_Held]] = []


class _Streams:
    """A grpclib service whose calls stream until the client goes away, as VStream does."""

    def __mapping__(self) -> dict[str, Handler]:
        return {"/t.T/Call": Handler(self._call, Cardinality.UNARY_STREAM, RawMessage, RawMessage)}

    async def _call(self, stream: object) -> None:
        held = _Held()  # a session's state, in one of its frames
        _refs.append(weakref.ref(held))
        await stream.recv_message()  # type: ignore[attr-defined]
        await stream.send_message(b"")  # type: ignore[attr-defined]
        await asyncio.sleep(3600)  # cancelled when the client leaves


async def _one_call(port: int) -> None:
    channel = Channel("127.0.0.1", port, codec=RawCodec())
    try:
        async with channel.request(
            "/t.T/Call", Cardinality.UNARY_STREAM, RawMessage, RawMessage
        ) as stream:
            await stream.send_message(b"", end=True)
            await stream.recv_message()
            # The client goes away mid-stream (its process ends): the
            # connection closes under the call, and grpclib cancels its task.
            channel.close()
    except StreamTerminatedError:
        pass


async def test_finished_calls_stay_reachable_until_released() -> None:
    _refs.clear()
    async with (
        trio_asyncio.open_loop(),
        open_grpc_server([_Streams()], codec=RawCodec()) as (server, port),
    ):
        for _ in range(3):  # fewer than grpclib's own clean-up interval (10)
            await trio_asyncio.aio_as_trio(_one_call)(port)
        await trio_asyncio.aio_as_trio(asyncio.sleep)(0.1)  # the server sees them go
        gc.collect()
        assert len(_refs) == 3
        # grpclib still holds the finished calls, their CancelledError and frames.
        assert all(ref() is not None for ref in _refs)
        done = release_memory([server])
        assert done.handlers_dropped == 3
        assert all(ref() is None for ref in _refs)
        assert drop_finished_calls(server) == 0  # nothing left to drop


def test_drop_finished_calls_ignores_other_servers() -> None:
    assert drop_finished_calls(object()) == 0


@pytest.mark.parametrize("fails", [False, True])
async def test_the_bridge_counts_ended_sessions(fails: bool) -> None:
    metrics = Metrics()

    async def run(send: object) -> None:
        if fails:
            raise ValueError("session failed")

    async def write(bodies: list[bytes]) -> None:
        return None

    async with trio_asyncio.open_loop():
        if fails:
            with pytest.raises(ValueError):
                await pump_responses(run, write, metrics=metrics)
        else:
            await pump_responses(run, write, metrics=metrics)
    assert metrics.gateway[SESSIONS_ENDED] == 1


class _Pool:
    """A tablet connection pool as far as a release uses it."""

    def __init__(self, closed: int, idle: int) -> None:
        self.closed, self.idle = closed, idle

    def forget_closed_streams(self) -> int:
        return self.closed

    def close_idle(self) -> int:
        closing, self.idle = self.idle, 0
        return closing


def test_a_release_closes_idle_tablet_connections() -> None:
    pools = [_Pool(closed=3, idle=2), _Pool(closed=0, idle=1)]
    done = release_memory([], pools)  # type: ignore[arg-type]
    assert (done.streams_dropped, done.connections_closed) == (3, 3)
    assert release_memory([], pools).connections_closed == 0  # type: ignore[arg-type]


def test_a_release_empties_the_gtid_memos() -> None:
    # A book that has read a shard's GTID events fills the process-wide memos ...
    book = PositionBook([binlogdata.ShardGtid(keyspace="ks", shard="-80", gtid="MySQL56/u:1-5")])
    for n in (6, 7):
        event = binlogdata.VEvent(
            type=binlogdata.VEventType.GTID, gtid=f"MySQL56/u:1-{n}", keyspace="ks", shard="-80"
        )
        book.apply_controls([frame_of(event)], [0], ("ks", "-80"))
    assert positions._READ_GTIDS and positions._ENCODED
    # ... which a release (clients have left) gives back.
    release_memory([])
    assert not positions._READ_GTIDS and not positions._ENCODED
