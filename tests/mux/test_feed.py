"""Feeds at the source level: sharing, stragglers, hand-over, linger, errors.

Consumers read a simulated tablet through the hub's sources exactly as shard
streamers do. Each must see every transaction after its start position once,
in order (read from the GTID events), whichever way it was served: joined to
a feed, detached to a private stream, or handed over from one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio
import trio.testing

from tests.mux.test_session_e2e import CountingDirectory, Replay, by_shard, vstream_request
from vsmux.cli import sharing
from vsmux.cli.main import build_parser
from vsmux.core.prepared import PreparedUnit, unprepared
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.mux import Gateway, open_feed_hub, run_vstream
from vsmux.mux.feed_hub import FeedHub
from vsmux.mux.shard_source import PushingSource, ShardSource
from vsmux.proto import binlogdata, query, topodata
from vsmux.sources._simulated import SimulatedCluster
from vsmux.topology import TabletInfo
from vsmux.wire import Frame

KS = "commerce"
SHARD = "-80"
T = binlogdata.VEventType


def _request(position: str, table: str = "/.*") -> binlogdata.VStreamRequest:
    return binlogdata.VStreamRequest(
        target=query.Target(keyspace=KS, shard=SHARD, tablet_type=topodata.TabletType.PRIMARY),
        position=position,
        filter=binlogdata.Filter(rules=[binlogdata.Rule(match=table)]),
    )


def _seqno(gtid: str) -> int:
    """The last transaction number of a one-server position (0 for an empty one)."""
    if ":" not in gtid:
        return 0
    return int(gtid.rsplit(":", 1)[1].rsplit("-", 1)[-1])


class Reader:
    """Reads one stream, recording the seqno of every unit and when it came."""

    def __init__(self, name: str, pause: Callable[[int], float] = lambda _n: 0.0) -> None:
        self.name = name
        self.pause = pause
        self.seqnos: list[int] = []
        self.times: list[float] = []
        self.error: VStreamError | None = None

    def _record(self, batch: list[Frame]) -> None:
        for frame in batch:
            if frame.type == T.GTID:
                self.seqnos.append(_seqno(frame.header().gtid))
                self.times.append(trio.current_time())

    async def run(self, source: ShardSource, request: binlogdata.VStreamRequest) -> None:
        try:
            async with source.vstream(request) as batches:
                async for batch in batches:
                    self._record(batch)
                    await trio.sleep(self.pause(len(self.seqnos)))
        except VStreamError as err:
            self.error = err


def _consecutive(seqnos: list[int], first: int) -> bool:
    return seqnos == list(range(first, first + len(seqnos)))


def _setup(**settings: object) -> tuple[SimulatedCluster, CountingDirectory, GatewaySettings]:
    cluster = SimulatedCluster.build({KS: ["-80", "80-"]}, seed=3, ddl_probability=0.0)
    return cluster, CountingDirectory(cluster), GatewaySettings(**settings)  # type: ignore[arg-type]


def _source(hub: FeedHub, cluster: SimulatedCluster) -> ShardSource:
    return hub.directory.source_for(cluster.tablet(KS, SHARD).info)


async def _write(cluster: SimulatedCluster, transactions: int) -> None:
    await cluster.run_workload(50.0, keyspace=KS, max_transactions=transactions)


async def test_readers_at_the_same_position_share_one_tablet_stream(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster, directory, settings = _setup()
    start = cluster.position(KS, SHARD)
    first = _seqno(start) + 1
    readers = [Reader(f"r{i}") for i in range(5)]
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            for reader in readers:
                nursery.start_soon(reader.run, source, _request(start))
            await _write(cluster, 200)
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
        assert directory.opened == 1
        assert hub.counters.feeds_opened == 1 and hub.counters.joins == 4
    end = _seqno(cluster.position(KS, SHARD))
    for reader in readers:
        assert reader.seqnos[-1] == end
        assert _consecutive(reader.seqnos, first), reader.name


async def test_different_filters_never_share(autojump_clock: trio.abc.Clock) -> None:
    cluster, directory, settings = _setup()
    start = cluster.position(KS, SHARD)
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Reader("all").run, source, _request(start))
            nursery.start_soon(Reader("one").run, source, _request(start, "customer"))
            await _write(cluster, 20)
            nursery.cancel_scope.cancel()
        assert directory.opened == 2 and hub.counters.feeds_opened == 2


async def test_copy_phase_and_unshared_keyspaces_read_privately(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster, directory, settings = _setup()
    cluster.topology.keyspaces[KS].share = True
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Reader("copy1").run, source, _request(""))
            nursery.start_soon(Reader("copy2").run, source, _request(""))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        assert directory.opened == 2 and hub.counters.feeds_opened == 0
        cluster.topology.keyspaces[KS].share = False
        start = cluster.position(KS, SHARD)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Reader("a").run, source, _request(start))
            nursery.start_soon(Reader("b").run, source, _request(start))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        assert directory.opened == 4 and hub.counters.feeds_opened == 0


@pytest.mark.parametrize("pushed", [False, True], ids=["read", "pushed"])
async def test_a_straggler_is_detached_and_misses_nothing(
    autojump_clock: trio.abc.Clock, pushed: bool
) -> None:
    # A ring of ~4 KB holds a few transactions: the crawling reader fills it fast.
    # Pushed: the readers leave sinks (the slow one's refuses while it would
    # pause), so a detach also comes after events its sink left.
    cluster, directory, settings = _setup(share_ring_bytes=4096, share_straggler_seconds=1.0)
    start = cluster.position(KS, SHARD)
    first = _seqno(start) + 1
    kind = PushedReader if pushed else Reader
    fast = kind("fast")
    slow = kind("slow", pause=lambda n: 30.0 if n < 40 else 0.0)
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fast.run, source, _request(start))
            nursery.start_soon(slow.run, source, _request(start))
            await trio.testing.wait_all_tasks_blocked()
            written = trio.current_time()
            await _write(cluster, 300)
            await trio.sleep(600)
            nursery.cancel_scope.cancel()
        assert hub.counters.detaches >= 1
        assert hub.counters.private_streams >= 1
    end = _seqno(cluster.position(KS, SHARD))
    for reader in (fast, slow):
        assert reader.seqnos[-1] == end, reader.name
        assert _consecutive(reader.seqnos, first), reader.name
    # The fast reader was held up at most about one straggler bound, not by the crawl.
    assert fast.times[-1] - written < 300 / 50.0 + 5.0
    if isinstance(fast, PushedReader) and isinstance(slow, PushedReader):
        # Most went to the sinks; the slow one's takes again once it keeps up.
        assert fast.taken > 50 and slow.taken > 0


async def test_a_reader_far_behind_catches_up_privately_and_is_handed_over(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster, directory, settings = _setup(share_join_transactions=5)
    old = cluster.position(KS, SHARD)
    cluster.apply_random_transactions(60, KS)
    now = cluster.position(KS, SHARD)
    live = Reader("live")
    behind = Reader("behind")
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(live.run, source, _request(now))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(behind.run, source, _request(old))
            await _write(cluster, 100)
            await trio.sleep(10)
            nursery.cancel_scope.cancel()
        assert hub.counters.handovers >= 1
        feed = hub.feeds[0]
        assert len(feed.consumers) == 0  # both left when cancelled
    end = _seqno(cluster.position(KS, SHARD))
    assert _consecutive(behind.seqnos, _seqno(old) + 1) and behind.seqnos[-1] == end
    assert _consecutive(live.seqnos, _seqno(now) + 1) and live.seqnos[-1] == end
    # One feed, and the behind reader's private stream.
    assert directory.opened == 2


async def test_a_feed_without_consumers_lingers_then_closes(autojump_clock: trio.abc.Clock) -> None:
    cluster, directory, settings = _setup(share_linger_seconds=5.0)
    start = cluster.position(KS, SHARD)
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        with trio.move_on_after(1):
            await Reader("a").run(source, _request(start))
        assert len(hub.feeds) == 1
        # A reader back within the linger reuses the feed.
        with trio.move_on_after(1):
            await Reader("b").run(source, _request(start))
        assert directory.opened == 1
        await trio.sleep(5.5)
        assert hub.feeds == []
        with trio.move_on_after(1):
            await Reader("c").run(source, _request(start))
        assert directory.opened == 2


async def test_a_tablet_error_reaches_every_consumer_after_the_units_before_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster, directory, settings = _setup()
    start = cluster.position(KS, SHARD)
    readers = [Reader(f"r{i}") for i in range(3)]
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            for reader in readers:
                nursery.start_soon(reader.run, source, _request(start))
            await _write(cluster, 20)
            await trio.sleep(1)
            cluster.tablet(KS, SHARD).faults.fail_after(0, Code.UNAVAILABLE, "boom")
            await _write(cluster, 5)
            await trio.sleep(1)
        assert hub.feeds == []  # gone from the hub at once: the next stream opens a new one
    for reader in readers:
        assert reader.error is not None and "boom" in reader.error.message
        assert reader.error.code == Code.UNAVAILABLE
        assert reader.seqnos == readers[0].seqnos
        assert _consecutive(reader.seqnos, _seqno(start) + 1)


class _SlowToAnswer:
    """A directory whose tablets take ``delay`` seconds to start a vstream."""

    def __init__(self, inner: CountingDirectory, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    def source_for(self, tablet: TabletInfo) -> ShardSource:
        inner = self._inner.source_for(tablet)
        delay = self._delay

        class Slow:
            tablet = inner.tablet

            @asynccontextmanager
            async def _open(
                self, request: binlogdata.VStreamRequest
            ) -> AsyncIterator[AsyncIterator[list[Frame]]]:
                await trio.sleep(delay)
                async with inner.vstream(request) as batches:
                    yield batches

            def vstream(
                self, request: binlogdata.VStreamRequest
            ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
                return self._open(request)

            def stream_health(
                self,
            ) -> AbstractAsyncContextManager[AsyncIterator[query.StreamHealthResponse]]:
                return inner.stream_health()

        return Slow()


class _HealthCounting(CountingDirectory):
    """Also counts StreamHealth streams."""

    def __init__(self, cluster: SimulatedCluster) -> None:
        super().__init__(cluster)
        self.health = 0

    def source_for(self, tablet: TabletInfo) -> ShardSource:
        inner = super().source_for(tablet)
        directory = self

        class Counted:
            tablet = inner.tablet

            def vstream(
                self, request: binlogdata.VStreamRequest
            ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
                return inner.vstream(request)

            def stream_health(
                self,
            ) -> AbstractAsyncContextManager[AsyncIterator[query.StreamHealthResponse]]:
                directory.health += 1
                return inner.stream_health()

        return Counted()


async def test_health_watches_share_one_stream_and_start_with_the_latest_report(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster = SimulatedCluster.build({KS: ["-80", "80-"]}, seed=3)
    directory = _HealthCounting(cluster)
    got: list[int] = []
    async with open_feed_hub(directory, cluster.topology, GatewaySettings()) as hub:
        source = _source(hub, cluster)

        async def watch() -> None:
            async with source.stream_health() as reports:
                async for report in reports:
                    got.append(report.tablet_alias.uid if report.tablet_alias else 0)
                    return

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(watch)
        await watch()  # a later watcher gets the latest report at once
    assert len(got) == 11
    assert directory.health == 1


async def test_a_burst_at_current_waits_for_a_new_feed_instead_of_streaming_alone(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster, directory, settings = _setup()
    cluster.apply_random_transactions(30, KS)
    resume_from = cluster.shard_log(KS, SHARD).position(_seqno(cluster.position(KS, SHARD)) - 3)
    readers = [Reader(f"current{i}") for i in range(10)]
    slow = _SlowToAnswer(directory, 0.5)
    async with open_feed_hub(slow, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            # A client resuming a little way back opens the feed; a burst at
            # "current" arrives while the tablet has not answered it yet.
            nursery.start_soon(Reader("resumed").run, source, _request(resume_from))
            await trio.sleep(0.1)
            assert hub.counters.feeds_opened == 1
            for reader in readers:
                nursery.start_soon(reader.run, source, _request("current"))
            await _write(cluster, 20)
            await trio.sleep(2)
            nursery.cancel_scope.cancel()
        assert hub.counters.private_streams == 0
        assert directory.opened == 1
    end = _seqno(cluster.position(KS, SHARD))
    for reader in readers:
        # Each starts with the position it joined at, then every later unit.
        assert reader.seqnos[-1] == end
        assert _consecutive(reader.seqnos, reader.seqnos[0])


async def test_current_joins_an_idle_feed_at_its_position(autojump_clock: trio.abc.Clock) -> None:
    cluster, directory, settings = _setup()
    cluster.apply_random_transactions(10, KS)
    now = cluster.position(KS, SHARD)
    late = Reader("late")
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Reader("first").run, source, _request(now))
            await trio.sleep(3)  # nothing written: the feed hears only heartbeats
            nursery.start_soon(late.run, source, _request("current"))
            await trio.sleep(1)
            await _write(cluster, 5)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        assert directory.opened == 1 and hub.counters.joins == 1
    # The first GTID names the position it joined at; the writes follow it.
    assert late.seqnos == list(range(_seqno(now), _seqno(cluster.position(KS, SHARD)) + 1))


async def test_a_burst_resuming_near_the_head_joins_the_first_ones_feed(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster, directory, settings = _setup()
    cluster.apply_random_transactions(40, KS)
    log = cluster.shard_log(KS, SHARD)
    head = _seqno(cluster.position(KS, SHARD))
    assert head >= 12
    starts = [head - 10, *range(head - 8, head + 1), head - 12]
    readers = [Reader(f"from{n}") for n in starts]
    async with open_feed_hub(_SlowToAnswer(directory, 0.2), cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            # The first one opens the feed; the rest resume a little way ahead
            # of it, and the last one behind where it started.
            for reader, start in zip(readers, starts, strict=True):
                nursery.start_soon(reader.run, source, _request(log.position(start)))
                await trio.sleep(0.01)
            await trio.sleep(3)
            await _write(cluster, 10)
            await trio.sleep(2)
            nursery.cancel_scope.cancel()
        # Only the one behind the feed's start read a stream of its own.
        assert hub.counters.private_streams == 1
        assert hub.counters.handovers == 1
    end = _seqno(cluster.position(KS, SHARD))
    for reader, start in zip(readers, starts, strict=True):
        assert reader.seqnos[-1] == end, reader.name
        assert _consecutive(reader.seqnos, start + 1), reader.name


class PushedReader(Reader):
    """A Reader that also leaves a sink: batches go to it while the reader waits.

    The sink leaves every ``leave_every``-th batch it is offered (it then
    comes through the iterator, in order), and takes nothing while the
    reader is paused or would pause, as a streamer's sink declines while its
    channel is full.
    """

    def __init__(self, name: str, *, leave_every: int = 0, **kw: object) -> None:
        super().__init__(name, **kw)  # type: ignore[arg-type]
        self.leave_every = leave_every
        self.offered = 0
        self.taken = 0
        self.read = 0
        self._paused = False

    def sink(self, batch: list[list[Frame] | PreparedUnit]) -> bool:
        self.offered += 1
        if (
            self._paused
            or self.pause(len(self.seqnos)) > 0  # a slow consumer's channel stays full
            or (self.leave_every and self.offered % self.leave_every == 0)
        ):
            return False
        self.taken += 1
        self._record(unprepared(batch))
        return True

    async def run(self, source: ShardSource, request: binlogdata.VStreamRequest) -> None:
        assert isinstance(source, PushingSource)
        try:
            async with source.vstream_pushing(request, self.sink) as batches:
                async for batch in batches:
                    self.read += 1
                    self._record(batch)
                    self._paused = True
                    await trio.sleep(self.pause(len(self.seqnos)))
                    self._paused = False
        except VStreamError as err:
            self.error = err


async def _read_together(
    readers: list[Reader], transactions: int
) -> tuple[SimulatedCluster, CountingDirectory, str]:
    """Start ``readers`` at the shard's position, write ``transactions``, read 5 s more.

    Returns the cluster, the directory and the position the readers started at.
    """
    cluster, directory, settings = _setup()
    start = cluster.position(KS, SHARD)
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            for reader in readers:
                nursery.start_soon(reader.run, source, _request(start))
            await trio.testing.wait_all_tasks_blocked()
            await _write(cluster, transactions)
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
    return cluster, directory, start


async def test_a_sink_takes_new_units_in_order_and_what_it_leaves_comes_next(
    autojump_clock: trio.abc.Clock,
) -> None:
    takes_all = PushedReader("takes all")
    leaves_some = PushedReader("leaves every 3rd", leave_every=3)
    plain = Reader("no sink")
    cluster, directory, start = await _read_together([takes_all, leaves_some, plain], 200)
    assert directory.opened == 1
    first = _seqno(start) + 1
    end = _seqno(cluster.position(KS, SHARD))
    for reader in (takes_all, leaves_some, plain):
        assert reader.seqnos[-1] == end, reader.name
        assert _consecutive(reader.seqnos, first), reader.name
    # New units went to the sinks; the iterator saw only what a sink left.
    assert takes_all.taken > 50 and takes_all.read <= 1
    assert leaves_some.taken > 30 and leaves_some.read >= leaves_some.offered // 3


class KeepingReader(PushedReader):
    """A PushedReader that keeps the prepared units its sink took."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.prepared: list[PreparedUnit] = []

    def sink(self, batch: list[list[Frame] | PreparedUnit]) -> bool:
        took = super().sink(batch)
        if took:
            self.prepared += [part for part in batch if isinstance(part, PreparedUnit)]
        return took


async def test_sinks_get_each_new_unit_prepared_once_for_all_of_them(
    autojump_clock: trio.abc.Clock,
) -> None:
    readers = [KeepingReader(f"sink {i}") for i in range(3)]
    cluster, directory, start = await _read_together(list(readers), 100)
    assert directory.opened == 1
    end = _seqno(cluster.position(KS, SHARD))
    for reader in readers:
        assert _consecutive(reader.seqnos, _seqno(start) + 1) and reader.seqnos[-1] == end
        assert len(reader.prepared) > 50, reader.name
    # The same objects: the feed packed each unit once, not once per sink.
    shared = {id(unit) for unit in readers[0].prepared}
    for reader in readers[1:]:
        assert len(shared & {id(unit) for unit in reader.prepared}) > 50, reader.name


async def test_a_resumed_copy_reads_privately_beside_a_feed_at_its_position(
    autojump_clock: trio.abc.Clock,
) -> None:
    # A position plus table_last_p_ks resumes an interrupted copy: the
    # tablet replays only changes to rows already copied, then copies the
    # rest, so it never reads a feed, even one at the same position and filter.
    cluster, directory, settings = _setup()
    start = cluster.position(KS, SHARD)
    resumed = _request(start)
    resumed.table_last_p_ks = [binlogdata.TableLastPk(table_name="customer")]
    live = Reader("live")
    copies = [Reader(f"copy{i}") for i in range(2)]
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        assert hub.may_share(_request(start))
        assert not hub.may_share(resumed)
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(live.run, source, _request(start))
            await trio.testing.wait_all_tasks_blocked()
            assert hub.counters.feeds_opened == 1
            for reader in copies:
                nursery.start_soon(reader.run, source, resumed)
            await _write(cluster, 20)
            await trio.sleep(2)
            assert [len(feed.consumers) for feed in hub.feeds] == [1]
            nursery.cancel_scope.cancel()
        assert directory.opened == 1 + len(copies)
        assert hub.counters.feeds_opened == 1
        assert hub.counters.joins == hub.counters.handovers == hub.counters.private_streams == 0
    end = _seqno(cluster.position(KS, SHARD))
    assert _consecutive(live.seqnos, _seqno(start) + 1) and live.seqnos[-1] == end
    for reader in copies:
        # Each read the tablet on its own, up to its newest transaction.
        assert reader.error is None and reader.seqnos and reader.seqnos[-1] == end, reader.name


async def test_a_detached_straggler_that_catches_up_rejoins_the_feed(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster, directory, settings = _setup(share_ring_bytes=4096, share_straggler_seconds=1.0)
    start = cluster.position(KS, SHARD)
    first = _seqno(start) + 1
    fast = Reader("fast")
    # Crawls over its first 40 transactions, then reads at full speed.
    slow = Reader("slow", pause=lambda n: 30.0 if n < 40 else 0.0)
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fast.run, source, _request(start))
            nursery.start_soon(slow.run, source, _request(start))
            await trio.testing.wait_all_tasks_blocked()
            await _write(cluster, 300)
            await trio.sleep(5)
            # The slow one was let go and reads a stream of its own.
            assert hub.counters.detaches >= 1
            assert [len(feed.consumers) for feed in hub.feeds] == [1]
            await trio.sleep(1500)  # 40 pauses of 30 s, then it races to the end
            # Caught up: handed over to the same feed, which both read again.
            assert hub.counters.handovers >= 1
            assert hub.counters.private_streams == hub.counters.detaches
            assert hub.counters.handovers == hub.counters.private_streams
            assert hub.counters.feeds_opened == 1
            assert [len(feed.consumers) for feed in hub.feeds] == [2]
            opened = directory.opened
            assert opened == 1 + hub.counters.private_streams
            # More writes reach both from the feed: no stream is opened for them.
            await _write(cluster, 50)
            await trio.sleep(5)
            assert directory.opened == opened
            assert [len(feed.consumers) for feed in hub.feeds] == [2]
            nursery.cancel_scope.cancel()
    end = _seqno(cluster.position(KS, SHARD))
    for reader in (fast, slow):
        assert reader.error is None, reader.name
        assert reader.seqnos[-1] == end, reader.name
        assert _consecutive(reader.seqnos, first), reader.name


async def test_at_share_max_feeds_a_new_key_reads_privately(
    autojump_clock: trio.abc.Clock,
) -> None:
    cluster, directory, settings = _setup(share_max_feeds=1)
    start = cluster.position(KS, SHARD)
    first = _seqno(start) + 1
    readers = {
        "all": Reader("all"),
        "all again": Reader("all again"),
        "customer": Reader("customer"),
        "customer again": Reader("customer again"),
    }
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(readers["all"].run, source, _request(start))
            await trio.testing.wait_all_tasks_blocked()
            # The one feed is open: another filter is another key, and reads alone.
            nursery.start_soon(readers["customer"].run, source, _request(start, "customer"))
            nursery.start_soon(readers["customer again"].run, source, _request(start, "customer"))
            # The open feed still takes joiners.
            nursery.start_soon(readers["all again"].run, source, _request(start))
            await _write(cluster, 30)
            await trio.sleep(3)
            assert len(hub.feeds) == 1
            assert [len(feed.consumers) for feed in hub.feeds] == [2]
            nursery.cancel_scope.cancel()
        assert hub.counters.feeds_opened == 1 and hub.counters.joins == 1
        assert hub.counters.private_streams == 2 and hub.counters.handovers == 0
        assert directory.opened == 3
    end = _seqno(cluster.position(KS, SHARD))
    for reader in readers.values():
        assert reader.seqnos and reader.seqnos[-1] == end, reader.name
        assert _consecutive(reader.seqnos, first), reader.name


async def test_a_joiner_whose_next_unit_sat_longer_than_join_seconds_reads_privately(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Two joiners at the same position, the same 20 transactions behind the
    # feed's newest: the first comes while its next unit has sat in the feed
    # 3 s and joins; the second 8 s after it arrived, and does not.
    cluster, directory, settings = _setup(share_join_seconds=5.0)
    start = cluster.position(KS, SHARD)
    first = _seqno(start) + 1
    soon = Reader("soon")
    late = Reader("late")
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        source = _source(hub, cluster)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Reader("opener").run, source, _request(start))
            await trio.testing.wait_all_tasks_blocked()
            await _write(cluster, 20)
            written = trio.current_time()
            await trio.sleep(3)
            nursery.start_soon(soon.run, source, _request(start))
            await trio.testing.wait_all_tasks_blocked()
            assert hub.counters.joins == 1 and hub.counters.private_streams == 0
            await trio.sleep_until(written + 8)
            ring = hub.feeds[0].ring
            assert ring.join_point(start) == 0  # still kept: only its age keeps it out
            nursery.start_soon(late.run, source, _request(start))
            await trio.testing.wait_all_tasks_blocked()
            assert hub.counters.joins == 1 and hub.counters.private_streams == 1
            # It reads the 20 on its own, then is handed over at the newest one.
            await trio.sleep(3)
            assert hub.counters.handovers == 1
            assert [len(feed.consumers) for feed in hub.feeds] == [3]
            await _write(cluster, 5)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        assert directory.opened == 2
    end = _seqno(cluster.position(KS, SHARD))
    for reader in (soon, late):
        assert reader.seqnos and reader.seqnos[-1] == end, reader.name
        assert _consecutive(reader.seqnos, first), reader.name


def test_serve_no_share_turns_sharing_off_and_share_or_nothing_leaves_it_on() -> None:
    parser = build_parser()

    def parsed(*options: str) -> dict[str, object]:
        return sharing.settings_from(parser.parse_args(["serve", *options]))

    assert parsed("--no-share") == {"share_streams": False}
    assert parsed("--share") == {"share_streams": True}
    assert parsed() == {}
    assert GatewaySettings().share_streams is True
    assert GatewaySettings(**parsed("--no-share")).share_streams is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "tablet_streams"), [((), 2), (("--no-share",), 6)], ids=["share", "no-share"]
)
async def test_sessions_under_serve_no_share_read_streams_of_their_own(
    autojump_clock: trio.abc.Clock, options: tuple[str, ...], tablet_streams: int
) -> None:
    # Three sessions on a 2-shard keyspace, with the settings `vsmux serve`
    # builds from its options (the same settings_from call), and a feed hub.
    args = build_parser().parse_args(["serve", *options])
    settings = GatewaySettings(**sharing.settings_from(args))  # type: ignore[arg-type]
    cluster, directory, _ = _setup()
    clients = [Replay() for _ in range(3)]
    current = binlogdata.VGtid(shard_gtids=[binlogdata.ShardGtid(keyspace=KS, gtid="current")])
    async with open_feed_hub(directory, cluster.topology, settings) as hub:
        gateway = Gateway(cluster.topology, hub.sources, settings, feeds=hub)
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(run_vstream, vstream_request(current), gateway, client)
                await trio.testing.wait_all_tasks_blocked()
            await cluster.run_workload(20.0, keyspace=KS, max_transactions=30)
            await trio.sleep(2)
            assert all(client.caught_up(cluster) for client in clients)
            assert directory.opened == tablet_streams
            assert len(hub.feeds) == (0 if settings.share_streams is False else 2)
            nursery.cancel_scope.cancel()
        if not settings.share_streams:
            assert hub.counters == type(hub.counters)()  # the hub was never asked
    # Each got the same transactions, shard by shard.
    assert len(clients[0].transactions) >= 30
    for client in clients[1:]:
        assert by_shard(client.transactions) == by_shard(clients[0].transactions)
