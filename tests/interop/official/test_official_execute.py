"""Execute metadata queries and request errors, seen through the official classes.

Debezium's connector sends these ``Execute`` calls before it streams, each
prefixed with a ``/*vt+ WORKLOAD_NAME=debezium */`` comment, and reads the
result rows with the query.Row encoding.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.e2e.e2e_harness import open_stack
from tests.interop.official.official_client import execute, reading, vstream_request
from tests.interop.official.official_replay import decode_row

pytestmark = pytest.mark.clients

PREFIX = "/*vt+ WORKLOAD_NAME=debezium */ "


def rows_of(official: Any, response: Any) -> list[list[str]]:
    """The result's rows as text, after checking it is a plain VARCHAR result."""
    assert not response.HasField("error"), response.error
    result = response.result
    assert all(f.type == official.query.VARCHAR for f in result.fields), result.fields
    return [[(v or b"").decode() for v in decode_row(row)] for row in result.rows]


async def test_metadata_queries_as_debezium_sends_them(official: Any) -> None:
    async with open_stack("grpc") as stack:
        port = stack.port
        shards = await execute(official, port, PREFIX + "SHOW VITESS_SHARDS LIKE 'commerce/%'")
        databases = await execute(official, port, PREFIX + "SHOW DATABASES")
        tables = await execute(official, port, PREFIX + "SHOW TABLES FROM `commerce`")
        # With its exclude-empty-shards option it asks each shard by session target.
        targeted = await execute(
            official, port, PREFIX + "SHOW TABLES", target="commerce:-80@primary"
        )
    # Column names as vtgate names them (Debezium reads by position).
    assert [f.name for f in shards.result.fields] == ["Shards"]
    assert rows_of(official, shards) == [["commerce/-80"], ["commerce/80-"]]
    assert [f.name for f in databases.result.fields] == ["Database"]
    assert ["commerce"] in rows_of(official, databases)
    assert [f.name for f in tables.result.fields] == ["Tables_in_commerce"]
    assert sorted(rows_of(official, tables)) == [["corder"], ["customer"], ["product"]]
    assert sorted(rows_of(official, targeted)) == [["corder"], ["customer"], ["product"]]


async def test_execute_names_an_unknown_keyspace_in_the_response_error(official: Any) -> None:
    """As vtgate: the call succeeds and ExecuteResponse.error carries the failure."""
    async with open_stack("grpc") as stack:
        response = await execute(official, stack.port, PREFIX + "SHOW TABLES FROM `nope`")
    assert response.HasField("error")
    assert response.error.code == official.vtrpc.NOT_FOUND
    assert "nope" in response.error.message


@pytest.mark.parametrize(
    ("shard_gtid", "codes", "words"),
    [
        (
            ("nope", "", "current"),
            {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION},
            ["failed to resolve vstream parameters", "nope"],
        ),
        (
            ("commerce", "-40", "current"),
            {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION},
            ["-40"],
        ),
        (
            None,
            {grpc.StatusCode.INVALID_ARGUMENT},
            ["vgtid must have at least one value"],
        ),
    ],
    ids=["unknown-keyspace", "unknown-shard", "no-vgtid"],
)
async def test_bad_requests_end_with_a_clear_status(
    official: Any, shard_gtid: tuple[str, str, str] | None, codes: set[Any], words: list[str]
) -> None:
    request = vstream_request(official, *([shard_gtid] if shard_gtid else []))
    async with open_stack("grpc") as stack, reading(official, stack.port, request) as reader:
        await reader.wait_ended(timeout=10)
    assert reader.responses == []
    error = reader.error
    assert error is not None, "the call ended with OK"
    assert error.code() in codes, (error.code(), error.details())
    for word in words:
        assert word in error.details(), error.details()
