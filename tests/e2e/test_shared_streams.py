"""Shared upstream streams end to end: many clients, one tablet stream per shard.

The simulated tablets are served on loopback gRPC ports and count the
VStream and StreamHealth streams they serve (``cluster.stream_counts``), so
what the gateway costs them is read on their side, not the gateway's:

- fifty clients on one 4-shard keyspace (official-proto grpcio clients,
  ``vsmux tail`` processes and ``vsmux tail``'s loop as a library) cost the
  tablets 4 VStreams, and each client gets every transaction after its start;
- a tablet stream that fails is opened again once for all its clients;
- a client slowed to a crawl is detached from the feeds (ring and straggler
  bounds set with ``vsmux serve``'s own options) while the others' delivery
  latency stays where it was, and it still gets every transaction in order;
- ``vsmux serve`` with a topology file: the metadata ``vsmux-share: off``
  makes a client read streams of its own, and a keyspace with
  ``share = false`` is never shared;
- ``vsmux serve --metrics``: the feed metrics it serves count the feeds,
  their consumers and the joins of shared clients (and stay at zero under
  ``--no-share``, where every client reads streams of its own).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.e2e_harness import banner_address, serve_command, stop_serve
from tests.e2e.shared_harness import (
    OfficialClient,
    Received,
    TailProcess,
    Writer,
    median_latency,
    open_sharing_stack,
    run_library_tail,
    seq_of,
)
from tests.interop.official.official_checks import assert_clean
from tests.interop.official.official_codegen import PACKAGE, Official, generate
from tests.server.http_scrape import scrape
from vsmux.cli import sharing
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code
from vsmux.sources._simulated import SimulatedCluster
from vsmux.topology import Topology
from vsmux.transport import asyncio_loop, serve_cluster_tablets

pytestmark = [pytest.mark.slow, pytest.mark.clients]

KS = "commerce"
SHARDS = ["-40", "40-80", "80-c0", "c0-"]
FAST_RETRIES: dict[str, Any] = {"retry_backoff_initial": 0.01, "retry_backoff_max": 0.05}
LINGER: dict[str, Any] = {"share_linger_seconds": 1.0}  # feeds without consumers close after this


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The classes generated from Vitess's protos (see tests/interop/official).

    Generated once per process: reused when the interop suite already did,
    else generated here and unloaded afterwards so that suite can generate
    its own later in the same run.
    """
    if PACKAGE in sys.modules:
        modules = {
            name: sys.modules[f"{PACKAGE}.{name}_pb2"]
            for name in ("binlogdata", "query", "topodata", "vtgate", "vtrpc")
        }
        yield Official(
            **modules, vtgateservice_grpc=sys.modules[f"{PACKAGE}.vtgateservice_pb2_grpc"]
        )
        return
    yield generate(tmp_path_factory.mktemp("vitess-official-protos"))
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def build_cluster(keyspaces: dict[str, list[str]] | None = None) -> SimulatedCluster:
    return SimulatedCluster.build(keyspaces or {KS: SHARDS}, seed=14)


async def wait_all(clients: Sequence[Received], pred: Any, timeout: float, what: str) -> None:
    """Wait until ``pred`` holds for every client (all within ``timeout`` seconds)."""
    with trio.move_on_after(timeout):
        for got in clients:
            while not pred(got):
                await got.changed.wait()
        return
    late = [got.name for got in clients if not pred(got)]
    raise AssertionError(f"{len(late)} clients never {what} in {timeout}s: {late[:10]}")


async def poll_until(pred: Any, timeout: float, what: str) -> None:
    """Wait until ``pred()`` holds (a counter: polled every 50 ms, for ``timeout`` seconds)."""
    with trio.move_on_after(timeout):
        while not pred():  # noqa: ASYNC110 - counters, polled
            await trio.sleep(0.05)
        return
    raise AssertionError(f"never {what} in {timeout}s")


def check_deliveries(clients: Sequence[Received], writer: Writer, final: dict[str, int]) -> None:
    """Each client got, per shard, every transaction from its start to ``final``, once, in order.

    And the same transaction is the same for everybody: its row count, and
    (official-proto clients) the bytes of its ROW events.
    """
    rows: dict[tuple[str, int], set[int]] = {}
    digests: dict[tuple[str, int], set[str]] = {}
    for got in clients:
        for shard in SHARDS:
            seqs = got.seqs.get(shard, [])
            txs = got.transactions(shard)
            assert txs, f"{got.name}: nothing on {shard}"
            # Only an official client's start position may come without rows.
            assert seqs[-len(txs) :] == txs and len(seqs) - len(txs) <= 1, (got.name, shard)
            expected = list(range(seqs[0], final[shard] + 1))
            assert seqs == expected, (
                f"{got.name} on {shard}: not every GTID from its start to {final[shard]} once "
                f"in order: {seqs[:5]}...{seqs[-5:]} ({len(seqs)} of {len(expected)})"
            )
            for n in txs:
                assert (shard, n) in writer.commits, (got.name, shard, n)
                rows.setdefault((shard, n), set()).add(got.rows[(shard, n)])
                if (shard, n) in got.digests:
                    digests.setdefault((shard, n), set()).add(got.digests[(shard, n)])
    row_conflicts = [key for key, counts in rows.items() if len(counts) > 1]
    assert not row_conflicts, f"clients disagree on row counts of {row_conflicts[:5]}"
    event_conflicts = [key for key, found in digests.items() if len(found) > 1]
    assert not event_conflicts, f"clients disagree on the row events of {event_conflicts[:5]}"


# -- fifty clients --------------------------------------------------------------------


async def test_fifty_clients_cost_the_tablets_one_stream_per_shard(official: Any) -> None:
    started = time.monotonic()
    cluster = build_cluster()
    writer = Writer(cluster, KS)
    while min(writer.positions().values()) < 2:
        writer.write_one()
    # A few clients resume from here, a few transactions behind the others.
    resume = {s: cluster.position(KS, s) for s in SHARDS}
    for _ in range(8):
        writer.write_one()
    async with (
        open_sharing_stack(cluster, GatewaySettings(**FAST_RETRIES, **LINGER)) as stack,
        trio.open_nursery() as nursery,
    ):
        writer_scope = trio.CancelScope()
        library_scope = trio.CancelScope()

        async def write() -> None:
            with writer_scope:
                await writer.run(rate=20)

        async def library_tails(received: list[Received]) -> None:
            with library_scope:
                async with trio.open_nursery() as tails_nursery:
                    for got in received:
                        tails_nursery.start_soon(run_library_tail, stack.address, KS, got)

        nursery.start_soon(write)
        # Each official client reads in a worker thread of its own.
        trio.to_thread.current_default_thread_limiter().total_tokens = 64
        officials = [OfficialClient(official, stack.port, KS, f"official-{i}") for i in range(40)]
        tails = [TailProcess(stack.address, KS, f"vsmux-tail-{i}") for i in range(3)]
        library = [Received(f"tail-library-{i}") for i in range(2)]
        for client in officials:
            nursery.start_soon(client.run)
        for tail in tails:
            await nursery.start(tail.run)
        nursery.start_soon(library_tails, library)
        current = [c.got for c in officials] + [t.got for t in tails] + library
        await wait_all(current, lambda g: g.has_data_on(SHARDS), 30, "received data")
        # Then a few that resume from where they stopped, a few transactions back.
        resumed = [
            OfficialClient(official, stack.port, KS, f"resumed-{i}", start=resume) for i in range(5)
        ]
        for client in resumed:
            nursery.start_soon(client.run)
        everyone = [*current, *(c.got for c in resumed)]
        assert len(everyone) == 50
        await wait_all(everyone, lambda g: g.has_data_on(SHARDS), 20, "received data")
        # The resumed clients read privately until they reach a feed's ring,
        # then are handed over; every client is on the feeds soon after.
        await poll_until(
            lambda: all(f.consumers == 50 for f in stack.hub.stats()), 10, "50 consumers a feed"
        )
        counts = cluster.stream_counts(KS)
        feeds = stack.hub.stats()
        print(
            f"\n50 clients receiving: tablets {counts}; feeds "
            f"{[(f.shard, f.consumers) for f in feeds]}; hub {stack.hub.counters}"
        )
        assert counts.vstreams == 4, counts
        assert 1 <= counts.health <= 4, counts
        assert sorted(f.shard for f in feeds) == sorted(SHARDS)
        # Opened in all: the feeds and the resumed clients' private catch-ups.
        assert counts.vstreams_opened <= 4 + 4 * len(resumed), counts

        await trio.sleep(2)  # a little more for everyone to compare
        writer_scope.cancel()
        final = writer.positions()
        await wait_all(everyone, lambda g: g.reached(final), 30, f"reached {final}")
        check_deliveries(everyone, writer, final)
        for client in resumed:  # from the transaction right after their start position
            first = {s: client.got.transactions(s)[0] for s in SHARDS}
            assert first == {s: seq_of(g) + 1 for s, g in resume.items()}, client.got.name
        for tail in tails:
            assert tail.returncode is None, f"{tail.got.name} exited with {tail.returncode}"

        # Everybody leaves: the feeds and health watches linger, then close.
        for client in [*officials, *resumed]:
            client.stop()
        for tail in tails:
            tail.stop()
        library_scope.cancel()
        await poll_until(
            lambda: (
                (cluster.stream_counts(KS).vstreams, cluster.stream_counts(KS).health) == (0, 0)
            ),
            LINGER["share_linger_seconds"] + 5,
            "every tablet stream closed",
        )
        assert stack.hub.feeds == []
        nursery.cancel_scope.cancel()
    print(
        f"opened in all: {cluster.stream_counts(KS)}; "
        f"{len(writer.commits)} GTIDs written; "
        f"{time.monotonic() - started:.1f}s"
    )


# -- a tablet stream fails --------------------------------------------------------------


async def test_a_failed_tablet_stream_is_reopened_once_for_all_its_clients(official: Any) -> None:
    cluster = build_cluster()
    writer = Writer(cluster, KS)
    for _ in range(8):
        writer.write_one()
    async with (
        open_sharing_stack(cluster, GatewaySettings(**FAST_RETRIES)) as stack,
        trio.open_nursery() as nursery,
    ):
        writer_scope = trio.CancelScope()

        async def write() -> None:
            with writer_scope:
                await writer.run(rate=20)

        nursery.start_soon(write)
        clients = [OfficialClient(official, stack.port, KS, f"client-{i}") for i in range(20)]
        for client in clients:
            nursery.start_soon(client.run)
        received = [c.got for c in clients]
        await wait_all(received, lambda g: g.has_data_on(SHARDS), 20, "received data")
        assert cluster.stream_counts(KS).vstreams == 4
        # Every tablet's stream breaks once (mysqld went away): the feeds end
        # with UNAVAILABLE, each consumer's retry comes back to one new feed.
        for shard in SHARDS:
            cluster.tablet(KS, shard).faults.fail_after(0, Code.UNAVAILABLE, "lost mysqld")
        await poll_until(lambda: stack.hub.counters.feeds_opened == 8, 10, "4 new feeds")
        await poll_until(
            lambda: all(f.consumers == len(clients) for f in stack.hub.stats()), 10, "rejoined"
        )
        await wait_open(cluster, KS, 4)  # the new feeds' calls have reached the tablets
        counts = cluster.stream_counts(KS)
        hub = stack.hub.counters
        print(f"\nafter the failures: tablets {counts}; hub {hub}")
        # Every tablet stream is a feed or a private catch-up (a client whose
        # last unit was still on its way to it when the stream broke).
        assert counts.vstreams_opened == hub.feeds_opened + hub.private_streams, (counts, hub)
        assert hub.feeds_opened == 8 and hub.private_streams <= 4, hub

        writer_scope.cancel()
        final = writer.positions()
        await wait_all(received, lambda g: g.reached(final), 20, f"reached {final}")
        check_deliveries(received, writer, final)
        assert [c.error for c in clients if c.error is not None] == []
        nursery.cancel_scope.cancel()


# -- a straggler ----------------------------------------------------------------------


def settings_from_options(*options: str) -> GatewaySettings:
    """GatewaySettings with the share_* values ``vsmux serve``'s options give."""
    parser = argparse.ArgumentParser()
    sharing.add_arguments(parser)
    return GatewaySettings(**FAST_RETRIES, **sharing.settings_from(parser.parse_args(options)))  # type: ignore[arg-type]


async def test_a_client_slowed_to_a_crawl_is_detached_and_the_others_keep_their_pace(
    official: Any,
) -> None:
    settings = settings_from_options(
        "--share-ring-bytes", "16384", "--share-straggler-seconds", "0.3"
    )
    assert (settings.share_ring_bytes, settings.share_straggler_seconds) == (16384, 0.3)
    cluster = build_cluster()
    writer = Writer(cluster, KS, rows=4, payload=300)
    for _ in range(8):
        writer.write_one()
    async with open_sharing_stack(cluster, settings) as stack, trio.open_nursery() as nursery:
        writer_scope = trio.CancelScope()

        async def write() -> None:
            with writer_scope:
                await writer.run(rate=40)

        nursery.start_soon(write)
        fast = [OfficialClient(official, stack.port, KS, f"fast-{i}") for i in range(5)]
        for client in fast:
            nursery.start_soon(client.run)
        others = [c.got for c in fast]
        await wait_all(others, lambda g: g.has_data_on(SHARDS), 20, "received data")

        before_start = time.monotonic()
        await trio.sleep(3)
        slow_start = time.monotonic()
        slow = OfficialClient(official, stack.port, KS, "slow")
        slow.pause = 2.0  # one response every two seconds
        nursery.start_soon(slow.run)
        await poll_until(lambda: stack.hub.counters.detaches >= 1, 30, "the slow client detached")
        detached_at = time.monotonic()
        await trio.sleep(2)
        # Let go by every feed, and nobody else was.
        await poll_until(
            lambda: [f.consumers for f in stack.hub.stats()] == [len(fast)] * len(SHARDS),
            10,
            "the slow client detached from every feed",
        )
        assert stack.hub.counters.detaches == len(SHARDS), stack.hub.counters
        after_end = time.monotonic()

        before, n_before = median_latency(others, writer.commits, before_start, slow_start)
        after, n_after = median_latency(others, writer.commits, slow_start, after_end)
        print(
            f"\np50 delivery latency of the other clients: {before * 1000:.1f} ms before the "
            f"slow client ({n_before} deliveries), {after * 1000:.1f} ms after ({n_after}); "
            f"detached {detached_at - slow_start:.1f}s after it started; hub {stack.hub.counters}; "
            f"tablets {cluster.stream_counts(KS)}"
        )
        assert after < 3 * before + 0.05, (before, after)

        # Back to full speed: the slow client catches up on its own streams,
        # and gets everything, once and in order.
        slow.pause = 0.0
        writer_scope.cancel()
        final = writer.positions()
        await wait_all([*others, slow.got], lambda g: g.reached(final), 30, f"reached {final}")
        check_deliveries([*others, slow.got], writer, final)
        assert_clean(official, slow.responses)
        print(
            f"slow client caught up: hub {stack.hub.counters}; tablets {cluster.stream_counts(KS)}"
        )
        nursery.cancel_scope.cancel()


# -- vsmux serve: share off, per request and per keyspace -----------------------------


def topology_file(topology: Topology, unshared: set[str]) -> str:
    """``topology`` (tablets with addresses) as a topology file; ``unshared`` keyspaces
    get ``share = false``."""
    lines = [f'cell = "{topology.cell}"']
    for name, info in topology.keyspaces.items():
        shards = ", ".join(f'"{s}"' for s in info.shards)
        lines += [f"[keyspaces.{name}]", f"shards = [{shards}]"]
        if name in unshared:
            lines.append("share = false")
    for tablet in topology.tablets:
        lines += [
            "[[tablets]]",
            f'keyspace = "{tablet.keyspace}"',
            f'shard = "{tablet.shard}"',
            'type = "primary"',
            f"uid = {tablet.uid}",
            f'address = "{tablet.address}"',
        ]
    return "\n".join(lines) + "\n"


async def wait_open(cluster: SimulatedCluster, keyspace: str, want: int) -> None:
    """Wait (10 s at most) until the tablets of ``keyspace`` have ``want`` VStreams open."""
    with trio.move_on_after(10):
        while cluster.stream_counts(keyspace).vstreams != want:  # noqa: ASYNC110 - a counter
            await trio.sleep(0.05)
    counts = cluster.stream_counts(keyspace)
    assert counts.vstreams == want, f"{keyspace}: {counts}, not {want} VStreams open"


async def test_share_off_metadata_and_share_false_keyspace_read_their_own_streams(
    official: Any, tmp_path: Path
) -> None:
    cluster = build_cluster({KS: SHARDS, "solo": ["-80", "80-"]})
    writers = [Writer(cluster, KS), Writer(cluster, "solo")]
    for writer in writers:
        for _ in range(8):
            writer.write_one()
    async with (
        asyncio_loop(),
        serve_cluster_tablets(cluster, "127.0.0.1") as topology,
        trio.open_nursery() as nursery,
    ):
        path = tmp_path / "topology.toml"
        path.write_text(topology_file(topology, unshared={"solo"}))
        command = serve_command(path)
        process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
        try:
            port = int((await banner_address(process)).rsplit(":", 1)[1])
            for writer in writers:
                nursery.start_soon(writer.run, 20)

            async def start(keyspace: str, name: str, **options: Any) -> OfficialClient:
                client = OfficialClient(official, port, keyspace, name, **options)
                nursery.start_soon(client.run)
                await client.got.wait(
                    lambda g: g.has_data_on(cluster.topology.serving_shards(keyspace)), 20
                )
                return client

            shared = [await start(KS, f"shared-{i}") for i in range(2)]
            await wait_open(cluster, KS, 4)
            own = await start(KS, "share-off", metadata=(("vsmux-share", "off"),))
            await wait_open(cluster, KS, 8)
            health = cluster.stream_counts(KS).health
            assert 4 < health <= 8, cluster.stream_counts(KS)
            own.stop()
            await wait_open(cluster, KS, 4)
            assert shared[0].error is None and shared[1].error is None

            solo = [await start("solo", f"solo-{i}") for i in range(3)]
            await wait_open(cluster, "solo", 3 * 2)
            solo[0].stop()
            await wait_open(cluster, "solo", 2 * 2)
            print(
                f"\n{KS}: {cluster.stream_counts(KS)}; solo (share = false): "
                f"{cluster.stream_counts('solo')}"
            )
        finally:
            nursery.cancel_scope.cancel()
            code = await stop_serve(process)
    assert code == 0


# -- vsmux serve --metrics: the feeds of shared clients --------------------------------


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample ``name`` in a Prometheus exposition: its labels and value."""
    return [
        (sample.labels, float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def metric(text: str, name: str, **labels: str) -> float:
    """The one sample ``name`` with exactly ``labels`` in a Prometheus exposition."""
    found = [value for have, value in samples(text, name) if have == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


async def metrics_port(log: Path) -> int:
    """The port ``vsmux serve --metrics HOST:0`` says (in its log) it serves metrics on."""
    text = ""
    with trio.move_on_after(10):
        while True:
            text = await trio.Path(log).read_text()
            found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", text)
            if found:
                return int(found.group(1))
            await trio.sleep(0.05)
    raise AssertionError(f"no metrics address in the log:\n{text}")


async def scrape_until(port: int, pred: Any, timeout: float, what: str) -> str:
    """Scrape ``/metrics`` every 50 ms until ``pred(text)`` holds; that text."""
    text = ""
    with trio.move_on_after(timeout):
        while True:
            head, body = await scrape(port)
            assert head.startswith(b"HTTP/1.0 200 OK"), head
            text = body.decode()
            if pred(text):
                return text
            await trio.sleep(0.05)
    raise AssertionError(f"never {what} in {timeout}s:\n{text}")


@pytest.mark.parametrize("share", [True, False], ids=["share", "no-share"])
async def test_serve_metrics_count_the_feeds_and_joins_of_shared_clients(
    official: Any, tmp_path: Path, share: bool
) -> None:
    cluster = build_cluster()
    writer = Writer(cluster, KS)
    for _ in range(8):
        writer.write_one()
    clients_n = 3
    async with (
        asyncio_loop(),
        serve_cluster_tablets(cluster, "127.0.0.1") as topology,
        trio.open_nursery() as nursery,
    ):
        path = tmp_path / "topology.toml"
        path.write_text(topology_file(topology, unshared=set()))
        log = tmp_path / "serve.log"
        command = serve_command(
            path,
            "--metrics",
            "127.0.0.1:0",
            *(() if share else ("--no-share",)),
            log_level="INFO",
        )
        with log.open("wb") as log_file:
            process = await trio.lowlevel.open_process(
                command, stdout=subprocess.PIPE, stderr=log_file
            )
        try:
            port = int((await banner_address(process)).rsplit(":", 1)[1])
            scrape_port = await metrics_port(log)
            nursery.start_soon(writer.run, 20)
            clients = []
            for i in range(clients_n):
                # One at a time: each comes to feeds that are open and caught up.
                client = OfficialClient(official, port, KS, f"client-{i}")
                nursery.start_soon(client.run)
                await client.got.wait(lambda g: g.has_data_on(SHARDS), 20)
                clients.append(client)
            streams = len(SHARDS) * (1 if share else clients_n)
            await wait_open(cluster, KS, streams)
            feeds = len(SHARDS) if share else 0
            consumers = clients_n if share else 0
            text = await scrape_until(
                scrape_port,
                lambda t: metric(t, "vsmux_feed_consumers_min") == consumers,
                10,
                f"{consumers} consumers a feed",
            )
            print(f"\nsharing {'on' if share else 'off'}: tablets {cluster.stream_counts(KS)}")
            assert metric(text, "vsmux_feeds") == feeds
            assert metric(text, "vsmux_feed_consumers_max") == consumers
            assert metric(text, "vsmux_feed_consumers_avg") == consumers
            assert metric(text, "vsmux_feeds_opened_total") == feeds
            # Each later client joined every shard's feed when it started.
            assert metric(text, "vsmux_feed_joins_total") == (clients_n - 1) * feeds
            for counter in ("handovers", "detaches", "private_streams"):
                assert metric(text, f"vsmux_feed_{counter}_total") == 0, counter
            # The session metrics count every client's shard streams either way.
            assert sum(
                metric(text, "vsmux_vstreams_count", keyspace=KS, shard=s, tablet_type="PRIMARY")
                for s in SHARDS
            ) == clients_n * len(SHARDS)
            # Per feed: one series per shard's tablet, or none without feeds.
            assert len(samples(text, "vsmux_feed_consumers")) == feeds
            assert len(samples(text, "vsmux_feed_position_info")) == feeds
            for shard in SHARDS if share else ():
                labels = {
                    "keyspace": KS,
                    "shard": shard,
                    "tablet_type": "PRIMARY",
                    "tablet": cluster.tablet(KS, shard).alias,
                }
                assert metric(text, "vsmux_feed_consumers", **labels) == clients_n
                assert metric(text, "vsmux_feed_kept_units", **labels) > 0
            if share:
                # A client leaves: its feeds count one consumer less.
                clients[0].stop()
                text = await scrape_until(
                    scrape_port,
                    lambda t: metric(t, "vsmux_feed_consumers_max") == clients_n - 1,
                    10,
                    "one consumer less",
                )
                assert metric(text, "vsmux_feeds") == len(SHARDS)
                assert metric(text, "vsmux_feed_consumers_min") == clients_n - 1
                assert metric(text, "vsmux_feed_joins_total") == (clients_n - 1) * len(SHARDS)
                await wait_open(cluster, KS, len(SHARDS))
            assert all(c.error is None for c in clients[1:])
        finally:
            nursery.cancel_scope.cancel()
            code = await stop_serve(process)
    assert code == 0
