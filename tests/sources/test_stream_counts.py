"""Simulated tablets count the VStream and StreamHealth streams they serve."""

from __future__ import annotations

import pytest

from tests.sources.replay import request
from vsmux.errors import VStreamError
from vsmux.sources._simulated import SimulatedCluster, StreamCounts
from vsmux.sources._simulated.gtid import GtidSet


async def test_open_and_opened_streams_per_tablet_and_keyspace() -> None:
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"], "other": ["0"]}, seed=3, large_probability=0
    )
    cluster.apply_random_transactions(10, "commerce")
    tablet = cluster.tablet("commerce", "-80")
    start = request(str(GtidSet.single(tablet.log.uuid, 0)), shard="-80")
    assert cluster.stream_counts() == StreamCounts()
    async with tablet.vstream(start) as first, tablet.stream_health() as reports:
        await first.__anext__()
        await reports.__anext__()
        async with tablet.vstream(start) as second:
            await second.__anext__()
            assert tablet.stream_counts() == StreamCounts(2, 2, 1, 1)
        assert cluster.stream_counts("commerce") == StreamCounts(1, 2, 1, 1)
        assert cluster.stream_counts("other") == StreamCounts()
    assert cluster.stream_counts() == StreamCounts(0, 2, 0, 1)


async def test_a_refused_stream_is_never_open() -> None:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=3)
    tablet = cluster.tablet("commerce", "0")
    tablet.health.set_down(True)
    with pytest.raises(VStreamError):
        async with tablet.vstream(request("current", shard="0")) as stream:
            await stream.__anext__()
    with pytest.raises(VStreamError):
        async with tablet.stream_health() as reports:
            await reports.__anext__()
    assert tablet.stream_counts() == StreamCounts()
