"""Random and mutated request bytes at VStream and Execute over a real loopback server.

Whatever arrives, the answer is a proper status (never UNKNOWN or
INTERNAL), a successful Execute reply is one protobuf's own runtime
decodes, nothing logged is a traceback or more than a line, and the server
is healthy afterwards.

The multiplexer behind VStream is a stand-in that does what a session does
with a request before it talks to tablets (resolve it, read its positions,
compile its filter as the simulated tablet does) and then ends the stream,
so a mutated request that happens to be valid is answered OK at once.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.gw_helpers import small_topology
from tests.server.raw_client import EXECUTE, VSTREAM, RawClient
from vsmux.core.positions import PositionBook
from vsmux.core.resolve import resolve_request
from vsmux.mux.api import Gateway, SendResponses
from vsmux.proto import binlogdata, query, vtgate, vtrpc
from vsmux.server.app import open_gateway_server
from vsmux.server.tables import StaticTableCatalog
from vsmux.sources._simulated.filters import TableFilter
from vsmux.wire.upb import message_class

# Statuses a request may get: anything but a bug (UNKNOWN, INTERNAL) or a hang.
ACCEPTABLE = {
    "OK",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "FAILED_PRECONDITION",
    "RESOURCE_EXHAUSTED",
}

SEEDS = {
    VSTREAM: [
        bytes(
            vtgate.VStreamRequest(
                caller_id=vtrpc.CallerId(principal="alice", groups=["cdc"]),
                tablet_type=2,
                vgtid=binlogdata.VGtid(
                    shard_gtids=[
                        binlogdata.ShardGtid(
                            keyspace="commerce",
                            shard="-80",
                            gtid="MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
                            table_p_ks=[
                                binlogdata.TableLastPk(
                                    table_name="customer",
                                    lastpk=query.QueryResult(
                                        fields=[query.Field(name="id", type=query.Type.INT64)],
                                        rows=[query.Row(lengths=[1], values=b"7")],
                                    ),
                                )
                            ],
                        ),
                        binlogdata.ShardGtid(keyspace="commerce", shard="80-", gtid="current"),
                    ]
                ),
                filter=binlogdata.Filter(
                    rules=[
                        binlogdata.Rule(match="customer", filter="select * from customer"),
                        binlogdata.Rule(match="/corder.*"),
                    ]
                ),
                flags=vtgate.VStreamFlags(
                    heartbeat_interval=1, cells="zone1", cell_preference="onlyspecified"
                ),
            )
        ),
        bytes(
            vtgate.VStreamRequest(
                vgtid=binlogdata.VGtid(
                    shard_gtids=[binlogdata.ShardGtid(keyspace="/comm.*", gtid="current")]
                )
            )
        ),
    ],
    EXECUTE: [
        bytes(
            vtgate.ExecuteRequest(
                caller_id=vtrpc.CallerId(principal="debezium"),
                session=vtgate.Session(target_string="commerce:-80@primary", autocommit=True),
                query=query.BoundQuery(sql="SHOW VITESS_SHARDS LIKE 'commerce/%'"),
            )
        ),
        bytes(
            vtgate.ExecuteRequest(
                session=vtgate.Session(target_string="commerce"),
                query=query.BoundQuery(
                    sql="/*vt+ WORKLOAD_NAME=debezium */ SHOW TABLES",
                    bind_variables={"v": query.BindVariable(type=query.Type.INT64, value=b"1")},
                ),
            )
        ),
    ],
}


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few random edits: flips, inserts, deletes, cuts, copies."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "copy"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x08, 0x0A, 0x12, 0x1A]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "cut":
            del data[at:]
        elif kind == "copy" and data:
            end = draw(st.integers(at, len(data)))
            data[at:at] = data[at:end]
    return bytes(data)


def request_bytes(method: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=256),
        st.sampled_from(SEEDS[method]).flatmap(mutated),
    )


async def resolve_and_stop(
    request: vtgate.VStreamRequest, gw: Gateway, send: SendResponses
) -> None:
    resolved = resolve_request(request, gw.topology, gw.settings.cell)
    PositionBook(resolved.shard_gtids)
    TableFilter.from_request(resolved.filter)


def check_answer(method: str, code: str, details: str, responses: list[bytes]) -> None:
    assert code in ACCEPTABLE, (code, details[:300])
    assert len(details.encode()) < 4096
    if method == EXECUTE and code == "OK":
        official = message_class("vtgate.ExecuteResponse")()
        official.ParseFromString(responses[0])  # raises if clients could not decode it


@pytest.mark.parametrize("method", [VSTREAM, EXECUTE])
async def test_random_and_mutated_requests(method: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gateway = Gateway(small_topology(), None)  # type: ignore[arg-type]
    catalog = StaticTableCatalog({"commerce": ["customer", "corder"]})
    async with (
        trio_asyncio.open_loop(),
        open_gateway_server(gateway, resolve_and_stop, catalog) as srv,
    ):
        client = RawClient(srv.port)

        @settings(
            max_examples=150,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(request_bytes(method))
        def throw(body: bytes) -> None:
            outcome = client.call(method, body, timeout=10.0)
            check_answer(method, outcome.code, outcome.details, outcome.responses)

        try:
            await trio.to_thread.run_sync(throw)
            # Healthy after: a health check and a well-formed request of each kind.
            assert await trio.to_thread.run_sync(client.health) < 2.0
            for seed in SEEDS[method]:
                outcome = await trio.to_thread.run_sync(client.call, method, seed)
                assert outcome.code in ("OK", "NOT_FOUND"), outcome.details
        finally:
            client.close()
    for record in caplog.records:
        text = record.getMessage()
        assert record.exc_info is None, text[:500]
        assert "Traceback" not in text and "\n" not in text, text[:500]
