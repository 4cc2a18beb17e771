"""Debezium's Vitess connector, unchanged, against the gateway over real gRPC.

Each test runs the gateway in front of simulated tablets (``open_stack("grpc")``, all on
127.0.0.1) in this Trio process and the connector in a child JVM (``debezium_runner``),
writes transactions through the simulated cluster, and compares the connector's records
with the row changes the shards' binlogs hold (``committed_rows``): every change once,
stamped with its own transaction's VGTID, and nothing else.

Property names are those of the bundled connector (Debezium 3.6): the gateway is
``database.hostname``/``database.port``, static auth ``database.user``/``database.password``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio

from tests.interop.debezium.committed_rows import (
    committed_changes,
    debezium_changes,
    in_copy_phase,
    log_marks,
    record_key,
    snapshot_keys,
)
from tests.interop.debezium.debezium_harness import (
    KEYSPACE,
    NEVER,
    RECORDS_TIMEOUT,
    START_TIMEOUT,
    assert_exactly,
    assert_no_errors,
    assert_offsets_follow,
    assert_state_matches,
    changes_at_least,
    connector,
    gateway,
    primaries_sent,
    streaming,
    until,
    write,
)
from tests.interop.debezium.debezium_setup import Installation
from vsmux.core.access import parse_access_file
from vsmux.core.auth import StaticAuthenticator, parse_password_file
from vsmux.core.settings import GatewaySettings
from vsmux.server.auth import Security

pytestmark = pytest.mark.clients


async def test_stream_from_current(debezium: Installation, tmp_path: Path) -> None:
    """snapshot.mode=never starts at ``current``: exactly the changes committed after it."""
    async with gateway() as stack:
        stack.cluster.apply_random_transactions(10, KEYSPACE)  # before the start: not streamed
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, NEVER) as running:
            await streaming(stack, running, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 40)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            assert {c.shard for c in expected} == {"-80", "80-"}
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert_exactly(debezium_changes(records), expected)
            assert_offsets_follow(records)
            topics = {f"vsmux.{KEYSPACE}.{t}" for t in ("customer", "corder", "product")}
            assert {r.topic for r in records} <= topics
            assert_no_errors(running)


async def test_snapshot_then_stream(debezium: Installation, tmp_path: Path) -> None:
    """snapshot.mode=initial: every row once from the copy phase, then the changes after."""
    async with gateway() as stack:
        stack.cluster.apply_random_transactions(30, KEYSPACE)
        copied = snapshot_keys(stack.cluster, KEYSPACE)
        rows = sum(len(keys) for keys in copied.values())
        marks = log_marks(stack.cluster, KEYSPACE)
        async with connector(debezium, stack, tmp_path, {"snapshot.mode": "initial"}) as running:
            records = await running.wait_records(
                lambda rs: sum(map(in_copy_phase, rs)) >= rows, RECORDS_TIMEOUT
            )
            copies = [r for r in records if in_copy_phase(r)]
            assert len(copies) == rows
            assert {r.value["op"] for r in copies} == {"c"}  # the connector's choice, not "r"
            for table, keys in copied.items():
                got = {record_key(r) for r in copies if r.value["source"]["table"] == table}
                assert got == keys, table
            await write(stack, 30)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert_exactly(debezium_changes(records), expected)
            assert sum(map(in_copy_phase, records)) == rows
            assert_offsets_follow(records)
            # Replaying copies and changes gives the keyspace's rows now, values included.
            assert_state_matches(stack, records)
            assert_no_errors(running)


async def test_transaction_larger_than_a_response(debezium: Installation, tmp_path: Path) -> None:
    """A transaction of thousands of rows goes out as several consecutive responses;
    the connector buffers it from BEGIN to COMMIT and emits every row of it."""
    limit = 8 * 1024
    settings = GatewaySettings(
        retry_backoff_initial=0.01, retry_backoff_max=0.05, max_response_bytes=limit
    )
    async with gateway(settings=settings) as stack:
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, NEVER) as running:
            await streaming(stack, running, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 5)
            workload = stack.cluster.workload
            workload.large_probability, workload.large_rows = 1.0, (3000, 3000)
            try:
                stack.cluster.apply_random_transactions(1, KEYSPACE)
            finally:
                workload.large_probability = 0.0
            await write(stack, 5)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            # Its part on each shard is far over the limit, however the rows fell.
            sizes = [
                sum(part.size for part in entry.parts)
                for shard in marks
                for entry in stack.cluster.shard_log(KEYSPACE, shard).entries_after(marks[shard])
            ]
            assert sorted(sizes)[-2] > 3 * limit, sizes
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert_exactly(debezium_changes(records), expected)
            assert_offsets_follow(records)
            assert_no_errors(running)


async def test_restart_resumes_from_stored_offsets(debezium: Installation, tmp_path: Path) -> None:
    """Stop, write while stopped, restart on the same offset file: nothing missing, and
    only the last transaction before the stop may come twice (at-least-once)."""
    async with gateway() as stack:
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, NEVER) as first:
            await streaming(stack, first, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 20)
            expected_first = committed_changes(stack.cluster, KEYSPACE, marks)
            await first.wait_records(changes_at_least(expected_first), RECORDS_TIMEOUT)
        assert first.process.returncode == 0, first.describe()
        assert_no_errors(first)
        got_first = debezium_changes(first.records())
        assert_exactly(got_first, expected_first)

        await write(stack, 20)  # committed while no connector runs
        while_stopped = committed_changes(stack.cluster, KEYSPACE, marks)
        async with connector(debezium, stack, tmp_path, NEVER) as second:
            # From the stored offset, not from "current": the writes above arrive.
            await second.wait_records(
                lambda rs: len(got_first) + len(debezium_changes(rs)) >= len(while_stopped),
                RECORDS_TIMEOUT,
            )
            await write(stack, 10)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            await second.wait_records(
                lambda rs: len(got_first) + len(debezium_changes(rs)) >= len(expected),
                RECORDS_TIMEOUT,
            )
            assert_no_errors(second)
        got = got_first + debezium_changes(second.records())
        missing = Counter(expected) - Counter(got)
        assert not missing, sorted(missing)[:10]
        twice = Counter(got) - Counter(expected)
        last = got_first[-1]
        assert {(c.shard, c.seqno) for c in twice} <= {(last.shard, last.seqno)}, twice


async def test_table_include_list(debezium: Installation, tmp_path: Path) -> None:
    """table.include.list: the listed table's changes, every one of them, and no other."""
    props = {**NEVER, "table.include.list": f"{KEYSPACE}.customer"}
    async with gateway() as stack:
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, props) as running:
            await streaming(stack, running, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 40)
            expected = committed_changes(stack.cluster, KEYSPACE, marks, tables=["customer"])
            assert expected, "the workload wrote no customer rows"
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert_exactly(debezium_changes(records), expected)
            assert_no_errors(running)
    # The connector asked for the one table; the gateway passed the rule to the tablets.
    rules = {
        rule.match
        for request in stack.tablet_requests
        if request.filter is not None
        for rule in request.filter.rules
    }
    assert rules == {"customer"}


async def test_one_shard(debezium: Installation, tmp_path: Path) -> None:
    """vitess.shard=-80: that shard's changes only; the other shard is never streamed."""
    async with gateway() as stack:
        before = primaries_sent(stack)
        props = {**NEVER, "vitess.shard": "-80"}
        async with connector(debezium, stack, tmp_path, props) as running:
            await streaming(stack, running, before, shards=["-80"])
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 40)
            expected = committed_changes(stack.cluster, KEYSPACE, marks, shards=["-80"])
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert_exactly(debezium_changes(records), expected)
            assert_no_errors(running)
        assert primaries_sent(stack)["80-"] == before["80-"]


async def test_reshard_with_stop_on_reshard(debezium: Installation, tmp_path: Path) -> None:
    """A split under vitess.stop_on_reshard: every change before the journal, then the
    gateway ends the stream and the connector takes that without an error."""
    props = {**NEVER, "vitess.stop_on_reshard": "true"}
    async with gateway() as stack:
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, props) as running:
            await streaming(stack, running, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 20)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            stack.reshard(KEYSPACE, ["-80", "80-c0", "c0-"])

            def ended() -> bool:
                return stack.gateway.metrics.gateway["active_sessions"] == 0

            await until(ended, running, "the gateway ended the stream", RECORDS_TIMEOUT)
            await until(
                lambda: "VStream streaming completed" in running.log_text(),
                running,
                "the connector saw the stream end with OK",
                RECORDS_TIMEOUT,
            )
            assert_exactly(debezium_changes(running.records()), expected)
            assert_no_errors(running)


async def test_tablet_failure_mid_stream(debezium: Installation, tmp_path: Path) -> None:
    """A tablet fails inside a transaction: the gateway reconnects to it, the connector
    sees no error, and every change arrives exactly once."""
    async with gateway() as stack:
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, NEVER) as running:
            await streaming(stack, running, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            tablet = stack.cluster.tablet(KEYSPACE, "-80")
            opened = stack.directory.opened.get(tablet.alias, 0)
            tablet.faults.fail_after(25, message="tablet restarted", mid_transaction=True)
            await write(stack, 40)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert stack.directory.opened[tablet.alias] > opened, "the fault never fired"
            assert_exactly(debezium_changes(records), expected)
            assert_offsets_follow(records)
            assert_no_errors(running)


async def test_username_and_password(debezium: Installation, tmp_path: Path) -> None:
    """Static auth (gRPC metadata ``username``/``password``) does not get in the way."""
    props = {**NEVER, "database.user": "vsmux", "database.password": "not-checked"}
    async with gateway() as stack:
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, props) as running:
            await streaming(stack, running, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 20)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert_exactly(debezium_changes(records), expected)
            assert_no_errors(running)


# The gateway's static authentication: vtgate's password file and an access file that
# lets the connector's user read the keyspace it streams, and nothing else.
PASSWORDS = '[{"Username": "cdc", "Password": "s3cret"}]'
ACCESS = '[users.cdc]\nkeyspaces = ["commerce"]\n'


def authenticated() -> Security:
    return Security(StaticAuthenticator(parse_password_file(PASSWORDS)), parse_access_file(ACCESS))


async def test_authenticated_gateway_streams_to_the_right_password(
    debezium: Installation, tmp_path: Path
) -> None:
    """``database.user``/``database.password`` (gRPC metadata ``username``/``password``)
    checked by ``--grpc_auth_mode static`` and the access file: every change arrives, and
    the tablets see the user as the effective caller."""
    props = {**NEVER, "database.user": "cdc", "database.password": "s3cret"}
    async with gateway(authenticated()) as stack:
        before = primaries_sent(stack)
        async with connector(debezium, stack, tmp_path, props) as running:
            await streaming(stack, running, before)
            marks = log_marks(stack.cluster, KEYSPACE)
            await write(stack, 20)
            expected = committed_changes(stack.cluster, KEYSPACE, marks)
            records = await running.wait_records(changes_at_least(expected), RECORDS_TIMEOUT)
            assert_exactly(debezium_changes(records), expected)
            assert_no_errors(running)
        callers = {
            r.effective_caller_id.principal
            for r in stack.tablet_requests
            if r.effective_caller_id is not None
        }
        assert callers == {"cdc"}
        assert not stack.gateway.metrics.denials


async def test_authenticated_gateway_refuses_a_wrong_password(
    debezium: Installation, tmp_path: Path
) -> None:
    """A wrong ``database.password``: the connector is refused with UNAUTHENTICATED and
    no tablet stream is opened for it."""
    props = {**NEVER, "database.user": "cdc", "database.password": "wrong"}
    async with gateway(authenticated()) as stack:
        async with connector(debezium, stack, tmp_path, props) as running:
            deadline = trio.current_time() + START_TIMEOUT
            # Refused by the gateway, and the connector says so (its engine may fail).
            while not (stack.gateway.metrics.denials and "UNAUTHENTICATED" in running.log_text()):
                assert trio.current_time() < deadline, running.describe()
                await trio.sleep(0.05)
            assert running.records() == []
        assert set(stack.gateway.metrics.denials) == {("unauthenticated", "")}
        assert stack.directory.opened == {}
        assert stack.tablet_requests == []
