"""What the Debezium scenarios share: the gateway, a connector on it, waits and checks.

The gateway is ``open_stack("grpc")`` from ``tests/e2e`` (simulated tablets each on its
own loopback gRPC port, the gateway on another) in the test's Trio run; the connector is
a child JVM (``debezium_runner``). Every wait here polls with a bound and fails with the
connector's log in the message; cancelling a wait just stops polling.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from tests.e2e.e2e_harness import Stack, open_stack
from tests.interop.debezium.committed_rows import (
    RowChange,
    debezium_changes,
    debezium_key,
    in_copy_phase,
    record_key,
    seqno_of,
)
from tests.interop.debezium.debezium_runner import (
    ConnectorRecord,
    DebeziumConnector,
    start_connector,
)
from tests.interop.debezium.debezium_setup import Installation
from vsmux.proto import query
from vsmux.server.auth import Security

__all__ = [
    "KEYSPACE",
    "NEVER",
    "RECORDS_TIMEOUT",
    "START_TIMEOUT",
    "assert_exactly",
    "assert_no_errors",
    "assert_offsets_follow",
    "assert_state_matches",
    "changes_at_least",
    "connector",
    "gateway",
    "primaries_sent",
    "streaming",
    "until",
    "write",
]

KEYSPACE = "commerce"
# Seconds. The JVM starts in 2-3 s on 2 cores and a scenario's records arrive within a
# second of the writes; the rest is headroom for a loaded machine.
START_TIMEOUT = 60.0
RECORDS_TIMEOUT = 60.0
NEVER = {"snapshot.mode": "never"}  # start at "current", no copy

# What the connector logs at ERROR when it is closed on purpose: it shuts its own
# channel down under the running stream.
OWN_SHUTDOWN = "Channel shutdownNow invoked"

Records = list[ConnectorRecord]


@asynccontextmanager
async def gateway(security: Security | None = None, **build: Any) -> AsyncIterator[Stack]:
    """The gRPC stack, without the workload's rare 2000-row transactions (slow here).

    ``security``: the gateway's authentication and access file (default none).
    """
    async with open_stack("grpc", large_probability=0.0, security=security, **build) as stack:
        yield stack


@asynccontextmanager
async def connector(
    debezium: Installation, stack: Stack, workdir: Path, properties: dict[str, str]
) -> AsyncIterator[DebeziumConnector]:
    """A connector on ``stack``'s port; stopped when the block exits (killed if it hangs,
    also when the block is cancelled)."""
    props = {"vitess.keyspace": KEYSPACE, "database.port": str(stack.port), **properties}
    running = start_connector(props, workdir, installation=debezium)
    try:
        yield running
    finally:
        with trio.CancelScope(shield=True):
            await running.stop()


async def until(
    condition: Callable[[], bool], running: DebeziumConnector, what: str, timeout: float
) -> None:
    """Poll ``condition`` until it holds; fail at once if the connector fails first."""
    deadline = trio.current_time() + timeout
    while not condition():
        problem = running.failure()
        if problem is not None or trio.current_time() > deadline:
            reason = problem or f"not within {timeout} s"
            raise AssertionError(f"{what}: {reason}\n{running.describe()}")
        await trio.sleep(0.05)


def primaries_sent(stack: Stack) -> dict[str, int]:
    """Events each serving shard's primary tablet has sent so far, over all its streams."""
    return {
        shard: stack.cluster.tablet(KEYSPACE, shard).faults.events_sent
        for shard in stack.cluster.topology.serving_shards(KEYSPACE)
    }


async def streaming(
    stack: Stack, running: DebeziumConnector, before: dict[str, int], shards: Iterable[str] = ()
) -> None:
    """Wait until the tablets of ``shards`` (default: all serving) sent the connector's
    stream its first events; ``before`` is :func:`primaries_sent` from before its start.

    A ``current`` start is fixed at the position the tablet reports in its first
    response, so what is written after this returns is what the connector must see.
    """
    wanted = list(shards) or stack.cluster.topology.serving_shards(KEYSPACE)

    def started() -> bool:
        sent = primaries_sent(stack)
        return all(sent[shard] > before.get(shard, 0) for shard in wanted)

    await until(started, running, f"the connector's stream on {wanted} started", START_TIMEOUT)


async def write(stack: Stack, transactions: int, *, per_step: int = 5) -> None:
    """Commit ``transactions`` workload transactions in bursts of ``per_step``.

    A burst leaves several transactions queued at once on a shard's stream, the case a
    gateway could be tempted to pack into one response; between bursts the streams run.
    """
    for start in range(0, transactions, per_step):
        stack.cluster.apply_random_transactions(min(per_step, transactions - start), KEYSPACE)
        await trio.lowlevel.checkpoint()


def changes_at_least(expected: Iterable[RowChange]) -> Callable[[Records], bool]:
    """A predicate: the records hold at least as many row changes as ``expected``."""
    want = len(list(expected))
    return lambda records: len(debezium_changes(records)) >= want


def assert_exactly(got: Iterable[RowChange], expected: Iterable[RowChange]) -> None:
    """Every expected change once and nothing else (multisets, order aside)."""
    got_n, want_n = Counter(got), Counter(expected)
    missing, extra = want_n - got_n, got_n - want_n
    assert not missing and not extra, (
        f"missing {sum(missing.values())}: {sorted(missing)[:10]}; "
        f"extra {sum(extra.values())}: {sorted(extra)[:10]}"
    )


def _positions(vgtid_json: str) -> dict[str, int]:
    return {sg["shard"]: seqno_of(sg["gtid"]) for sg in json.loads(vgtid_json)}


def assert_offsets_follow(records: Records) -> None:
    """The stored offsets never run ahead of what the records carried.

    Each record's ``source.vgtid`` is its transaction's VGTID and its stored offset the
    position the connector would resume from: on every shard at least the previous
    transaction's VGTID (nothing processed is replayed beyond the transaction itself),
    at most its own, and strictly before its own on its own shard (the transaction is
    not skipped if the connector stops in the middle of it).
    """
    streamed = [r for r in records if r.value is not None and not in_copy_phase(r)]
    for previous, record in itertools.pairwise(streamed):
        before = _positions(previous.value["source"]["vgtid"])
        own = _positions(record.value["source"]["vgtid"])
        stored = _positions(record.offset["vgtid"])
        shard = record.value["source"]["shard"]
        context = f"record {record.key} on {shard}: source {own}, stored {stored}"
        assert stored[shard] < own[shard], context
        same = previous.value["source"]["vgtid"] == record.value["source"]["vgtid"]
        for name, position in stored.items():
            assert position <= own[name], context
            if not same:
                assert position >= before[name], f"{context}, previous {before}"


def assert_no_errors(running: DebeziumConnector) -> None:
    """No engine failure, and nothing logged at ERROR apart from its own shutdown."""
    assert running.failure() is None, running.describe()
    errors = [line for line in running.log_lines("ERROR") if OWN_SHUTDOWN not in line]
    assert errors == [], running.describe()


def _json_value(column_type: query.Type, raw: bytes) -> Any:
    """A column's value as the connector's JSON has it, for types whose form is fixed."""
    if column_type == query.Type.INT64:
        return int(raw)
    if column_type == query.Type.VARCHAR:
        return raw.decode()
    if column_type == query.Type.VARBINARY:
        return base64.b64encode(raw).decode()
    return None  # decimal/datetime: depends on handling modes; compared elsewhere


def assert_state_matches(stack: Stack, records: Records) -> None:
    """Apply the records in order; the result must be the keyspace's rows now.

    Keys must match exactly; values are compared for bigint, varchar and varbinary
    columns (NULLs included), whose JSON form does not depend on the connector's
    handling modes.
    """
    state: dict[tuple[str, Any], dict[str, Any]] = {}
    for record in records:
        if record.value is None:
            continue
        slot = (record.value["source"]["table"], record_key(record))
        if record.value["op"] == "d":
            state.pop(slot, None)
        else:
            state[slot] = record.value["after"]
    shard = stack.cluster.topology.serving_shards(KEYSPACE)[0]
    schemas = stack.cluster.shard_log(KEYSPACE, shard).schemas
    want: dict[tuple[str, Any], dict[str, Any]] = {}
    for table, rows in stack.cluster.table_contents(KEYSPACE).items():
        schema = schemas[table]
        fixed = [c for c in schema.columns if _json_value(c.type, b"0") is not None]
        for pk, values in rows.items():
            row = {}
            for column in fixed:
                raw = values[column.name]
                row[column.name] = None if raw is None else _json_value(column.type, raw)
            want[(table, debezium_key(schema, pk))] = row
    assert state.keys() == want.keys()
    for slot, row in want.items():
        assert {name: state[slot].get(name) for name in row} == row, slot
