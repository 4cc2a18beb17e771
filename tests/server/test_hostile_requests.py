"""One hostile request must not stop the gateway (issue 12).

Each request that once froze the gateway, or made it answer UNKNOWN with a
traceback, is sent over real loopback gRPC with grpcio (the client most
users have, with its 16 KiB limit on response metadata) to a gateway on a
simulated cluster, while another connection polls the health service. Each
test checks the status and message the request gets, that it is answered
fast (generous bounds: these took from seconds to minutes), that every
health check meanwhile was answered, and that nothing logged is a traceback
or more than one line.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import trio
import trio_asyncio

from tests.server.raw_client import EXECUTE, VSTREAM, Outcome, RawClient, poll_health
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, run_vstream
from vsmux.proto import binlogdata, query, vtgate, vtrpc
from vsmux.server.app import GatewayServer, open_gateway_server
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog
from vsmux.sources._simulated import SimulatedCluster
from vsmux.wire.upb import message_class

# Far above what these take now (milliseconds), far below what they took.
FAST = 2.0
# The longest log line one request may cause.
LOG_LINE_LIMIT = 4096

DEFAULTS = GatewaySettings()
# Limits raised far enough that a request reaches the parsers behind them.
ROOMY = GatewaySettings(
    max_name_bytes=4_000_000,
    max_shard_name_bytes=4_000_000,
    max_gtid_bytes=4_000_000,
    max_filter_sql_bytes=4_000_000,
)


@asynccontextmanager
async def gateway_on_simulated_cluster(
    settings: GatewaySettings = DEFAULTS,
) -> AsyncIterator[GatewayServer]:
    cluster = SimulatedCluster.build({"commerce": ["-80", "80-"]}, seed=3, ddl_probability=0.0)
    gateway = Gateway(cluster.topology, cluster, settings)
    catalog = ClusterTableCatalog(cluster, StaticTableCatalog({}))
    async with trio_asyncio.open_loop(), open_gateway_server(gateway, run_vstream, catalog) as srv:
        yield srv


async def call_with_health_polled(port: int, method: str, body: bytes, **kwargs: Any) -> Outcome:
    """Make the call while another connection checks health; every check must pass."""
    done = False
    health_times: list[float] = []

    def hostile() -> Outcome:
        nonlocal done
        try:
            with RawClient(port) as client:
                return client.call(method, body, **kwargs)
        finally:
            done = True

    async def poll() -> None:
        health_times.extend(await trio.to_thread.run_sync(poll_health, port, lambda: done))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        outcome = await trio.to_thread.run_sync(hostile)
    assert health_times, "no health check was answered"
    assert max(health_times) < FAST, health_times
    return outcome


def check_log(records: list[logging.LogRecord]) -> None:
    for record in records:
        text = record.getMessage()
        assert record.exc_info is None, text[:500]
        assert "Traceback" not in text, text[:500]
        assert "\n" not in text and "\r" not in text, text[:500]
        assert len(text) <= LOG_LINE_LIMIT, text[:500]


def vstream_request(
    keyspace: str = "commerce",
    shard: str = "-80",
    gtid: str = "current",
    rules: list[binlogdata.Rule] | None = None,
    principal: str = "",
) -> bytes:
    return bytes(
        vtgate.VStreamRequest(
            vgtid=binlogdata.VGtid(
                shard_gtids=[binlogdata.ShardGtid(keyspace=keyspace, shard=shard, gtid=gtid)]
            ),
            filter=binlogdata.Filter(rules=rules) if rules is not None else None,
            caller_id=vtrpc.CallerId(principal=principal) if principal else None,
        )
    )


def execute_request(sql: str) -> bytes:
    return bytes(vtgate.ExecuteRequest(session=vtgate.Session(), query=query.BoundQuery(sql=sql)))


def gtid_with_ranges(n: int) -> str:
    return "MySQL56/" + ",".join(f"{uuid.UUID(int=i + 1)}:1-{i + 2}" for i in range(n))


def huge_filter_sql() -> list[binlogdata.Rule]:
    sql = "select * from customer" + " " * 1_000_000 + "x"
    return [binlogdata.Rule(match="customer", filter=sql)]


@dataclass(frozen=True)
class Hostile:
    name: str
    method: str
    body: Callable[[], bytes]
    code: str
    message: str  # a part of the status message
    settings: GatewaySettings = DEFAULTS
    # Refused by the edge (one "refused" log line), not by the session.
    at_edge: bool = True


MEGA_K = "k" * 1_000_000
HOSTILE = [
    Hostile(
        "keyspace-1MB",
        VSTREAM,
        lambda: vstream_request(keyspace=MEGA_K),
        "INVALID_ARGUMENT",
        "vgtid.shard_gtids[0].keyspace is 1000000 bytes long, over the limit of 64 bytes "
        "(vsmux serve --max-name-bytes): 'kkkk",
    ),
    Hostile(
        "keyspace-1MB-past-the-limit",
        VSTREAM,
        lambda: vstream_request(keyspace=MEGA_K),
        "NOT_FOUND",
        "failed to resolve vstream parameters: keyspace 'kkkk",
        ROOMY,
        at_edge=False,
    ),
    Hostile(
        "shard-100KB",
        VSTREAM,
        lambda: vstream_request(shard="s" * 100_000),
        "INVALID_ARGUMENT",
        "vgtid.shard_gtids[0].shard is 100000 bytes long, over the limit of 256 bytes",
    ),
    Hostile(
        "shard-100KB-past-the-limit",
        VSTREAM,
        lambda: vstream_request(shard="s" * 100_000),
        "NOT_FOUND",
        "failed to resolve vstream parameters: shard commerce/'ssss",
        ROOMY,
        at_edge=False,
    ),
    Hostile(
        "gtid-20k-ranges",
        VSTREAM,
        lambda: vstream_request(gtid=gtid_with_ranges(20_000)),
        "INVALID_ARGUMENT",
        "vgtid.shard_gtids[0].gtid is 888905 bytes long, over the limit of 65536 bytes "
        "(vsmux serve --max-gtid-bytes)",
    ),
    Hostile(
        # The simulated tablet parses the whole set and refuses it, quoting 200 bytes.
        "gtid-20k-ranges-past-the-limit",
        VSTREAM,
        lambda: vstream_request(gtid=gtid_with_ranges(20_000)),
        "INVALID_ARGUMENT",
        "GTIDSet Mismatch: requested position 'MySQL56/00000000-0000-0000-0000-000000000001:1-2,",
        ROOMY,
        at_edge=False,
    ),
    Hostile(
        "filter-sql-1MB",
        VSTREAM,
        lambda: vstream_request(rules=huge_filter_sql()),
        "INVALID_ARGUMENT",
        "filter.rules[0].filter is 1000023 bytes long, over the limit of 65536 bytes "
        "(vsmux serve --max-filter-sql-bytes)",
    ),
    Hostile(
        "filter-sql-1MB-past-the-limit",
        VSTREAM,
        lambda: vstream_request(rules=huge_filter_sql()),
        "INVALID_ARGUMENT",
        "filter 'select * from customer    ",
        ROOMY,
        at_edge=False,
    ),
    Hostile(
        "request-16MB",
        VSTREAM,
        lambda: vstream_request(principal="p" * 16_000_000),
        "RESOURCE_EXHAUSTED",
        "request message is 16000038 bytes, over the limit of 4194304 bytes "
        "(vsmux serve --max-request-bytes)",
    ),
    Hostile(
        "execute-10MB-sql",
        EXECUTE,
        lambda: execute_request("select " + "x" * 10_000_000),
        "RESOURCE_EXHAUSTED",
        "request message is 10000019 bytes, over the limit of 4194304 bytes",
    ),
    Hostile(
        "many-tiny-elements",
        VSTREAM,
        lambda: b"\x0a\xf0\xff\xff\x01" + b"\x22\x00" * (2 * 1024 * 1024 - 8),
        "INVALID_ARGUMENT",
        "vtgate.VStreamRequest has more than 50000 fields and list elements",
    ),
    Hostile(
        "random-bytes",
        VSTREAM,
        lambda: random.Random(12).randbytes(4096),
        "INVALID_ARGUMENT",
        "malformed vtgate.VStreamRequest: ",
    ),
    Hostile(
        "varint-of-11-bytes",
        VSTREAM,
        lambda: b"\x10" + b"\xff" * 10 + b"\x01",
        "INVALID_ARGUMENT",
        "malformed vtgate.VStreamRequest: tablet_type: a varint longer than 10 bytes at byte 1",
    ),
    Hostile(
        "invalid-utf8-keyspace",
        VSTREAM,
        lambda: b"\x1a\x06\x0a\x04\x0a\x02\xff\xfe",
        "INVALID_ARGUMENT",
        "malformed vtgate.VStreamRequest: vgtid.shard_gtids[0].keyspace: not valid UTF-8",
    ),
    Hostile(
        # Valid protobuf: the mistyped field is an unknown field, dropped.
        "vgtid-as-varint",
        VSTREAM,
        lambda: b"\x18\x05",
        "INVALID_ARGUMENT",
        "failed to resolve vstream parameters: vgtid must have at least one value",
        at_edge=False,
    ),
    Hostile(
        "execute-random-bytes",
        EXECUTE,
        lambda: random.Random(13).randbytes(4096),
        "INVALID_ARGUMENT",
        "malformed vtgate.ExecuteRequest: ",
    ),
    Hostile(
        "execute-invalid-utf8-sql",
        EXECUTE,
        lambda: b"\x1a\x04\x0a\x02\xc3\x28",
        "INVALID_ARGUMENT",
        "malformed vtgate.ExecuteRequest: query.sql: not valid UTF-8",
    ),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
async def test_hostile_request(case: Hostile, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with gateway_on_simulated_cluster(case.settings) as srv:
        outcome = await call_with_health_polled(srv.port, case.method, case.body())
    assert outcome.code == case.code, outcome.details[:500]
    assert case.message in outcome.details, outcome.details[:500]
    assert len(outcome.details.encode()) < 1024
    assert outcome.seconds < FAST
    check_log(caplog.records)
    if case.at_edge:
        refusals = [
            r.getMessage() for r in caplog.records if " refused peer=127.0.0.1:" in r.getMessage()
        ]
        assert len(refusals) == 1 and r"\n" not in refusals[0]


async def test_like_with_24_percent_signs(caplog: pytest.LogCaptureFixture) -> None:
    # Exponential backtracking before: 16 % took 1-12 s, 24 never finished.
    caplog.set_level(logging.INFO)
    sql = "SHOW VITESS_SHARDS LIKE '" + "%" * 24 + "x'"
    async with gateway_on_simulated_cluster() as srv:
        outcome = await call_with_health_polled(srv.port, EXECUTE, execute_request(sql))
    assert outcome.code == "OK"
    response = vtgate.ExecuteResponse.parse(outcome.responses[0])
    assert response.error is None and response.result is not None
    assert response.result.rows == []
    assert outcome.seconds < FAST
    check_log(caplog.records)


async def test_execute_echoes_a_big_query_cut(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with gateway_on_simulated_cluster() as srv:
        sql = "select " + "x" * 3_000_000
        outcome = await call_with_health_polled(srv.port, EXECUTE, execute_request(sql))
    assert outcome.code == "OK"
    response = vtgate.ExecuteResponse.parse(outcome.responses[0])
    assert response.error is not None
    assert response.error.message.endswith("'... (3000007 characters)")
    assert len(response.error.message) < 300
    assert len(outcome.responses[0]) < 1024
    check_log(caplog.records)


async def test_execute_with_session_as_a_varint_gets_a_decodable_answer() -> None:
    # Used to be answered with a response clients could not decode.
    # After the request's own session: the last occurrence of a field wins.
    body = execute_request("SHOW DATABASES") + b"\x10\x05"
    async with gateway_on_simulated_cluster() as srv:
        outcome = await call_with_health_polled(srv.port, EXECUTE, body)
    assert outcome.code == "OK"
    official = message_class("vtgate.ExecuteResponse")()
    official.ParseFromString(outcome.responses[0])
    assert not official.HasField("error")
    assert len(official.result.rows) == 1  # commerce


async def test_a_caller_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    principal = "alice\n2024-01-01 00:00:00 INFO vsmux.server forged\x1b[2J" + "p" * 100_000
    async with gateway_on_simulated_cluster() as srv:
        outcome = await call_with_health_polled(
            srv.port, VSTREAM, vstream_request(keyspace="nope", principal=principal)
        )
    assert outcome.code == "NOT_FOUND"
    check_log(caplog.records)
    start = next(r.getMessage() for r in caplog.records if "vstream start" in r.getMessage())
    assert "caller='alice\\n2024-01-01 00:00:00 INFO vsmux.server forged\\x1b[2J" in start


async def test_compressed_requests_are_unimplemented() -> None:
    async with gateway_on_simulated_cluster() as srv:
        outcome = await call_with_health_polled(
            srv.port,
            EXECUTE,
            # Compressible: grpcio sends a message uncompressed when gzip does not help.
            execute_request("/*" + " " * 10_000 + "*/ SHOW DATABASES"),
            compression=grpc.Compression.Gzip,
        )
    assert outcome.code == "UNIMPLEMENTED"
    assert outcome.details.startswith("compressed requests are not supported by vsmux")
