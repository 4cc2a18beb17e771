"""Debezium's Vitess connector stays connected through primary failovers.

The gateway buffers the PRIMARY streams of a shard whose primary fails over, so the
connector sees a pause, not an error, and records every committed change exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.debezium.committed_rows import committed_changes, debezium_changes, log_marks
from tests.interop.debezium.debezium_harness import (
    KEYSPACE,
    NEVER,
    RECORDS_TIMEOUT,
    assert_exactly,
    assert_no_errors,
    assert_offsets_follow,
    changes_at_least,
    connector,
    gateway,
    primaries_sent,
    streaming,
    write,
)
from tests.interop.debezium.debezium_setup import Installation

pytestmark = pytest.mark.clients


async def test_connector_rides_through_a_reparent_and_a_failover(
    debezium: Installation, tmp_path: Path
) -> None:
    async with gateway(tablet_types=("primary", "replica")) as stack:
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, NEVER) as running:
            await streaming(stack, running, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 20)
            stack.reparent(KEYSPACE, "-80")  # planned
            await write(stack, 20)
            await stack.fail_over(KEYSPACE, "80-", promote_after=1.5)  # unplanned
            await write(stack, 20)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert_exactly(debezium_changes(records), expected)
            assert_offsets_follow(records)
            assert_no_errors(running)
        metrics = stack.gateway.metrics
        assert metrics.total("VStreamFailoverBufferStopsNewPrimary") >= 1
        assert metrics.total("VStreamsEndedWithErrors") == 0
