"""The tail client over real gRPC, against the gateway server with a scripted session."""

from __future__ import annotations

import io
import json
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from tests.client.events import KS, E, response, simple, transaction, vgtid, vgtid_event
from tests.client.fakes import WatchedIO
from vsmux.client.checkpoint import CheckpointStore
from vsmux.client.request import StreamOptions
from vsmux.client.retry import Backoff
from vsmux.client.tail import EXIT_ERROR, EXIT_OK, EXIT_USAGE, TailConfig, run_tail
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import Gateway, SendResponses
from vsmux.proto import topodata, vtgate
from vsmux.server.app import open_gateway_server
from vsmux.server.tables import StaticTableCatalog
from vsmux.topology import KeyspaceInfo, Topology, split_address
from vsmux.transport import grpc_connector, open_vstream

HANG = "hang"
Step = list[vtgate.VStreamResponse] | VStreamError | str


class ScriptedSessions:
    """A ``run_vstream`` that plays one script per call and records requests."""

    def __init__(self, *scripts: Sequence[Step]) -> None:
        self.scripts = list(scripts)
        self.requests: list[vtgate.VStreamRequest] = []
        self.started = trio.Event()

    async def __call__(
        self, request: vtgate.VStreamRequest, gateway: Gateway, send: SendResponses
    ) -> None:
        self.requests.append(request)
        self.started.set()
        for step in self.scripts.pop(0) if self.scripts else [HANG]:
            if step == HANG:
                await trio.sleep_forever()
            elif isinstance(step, VStreamError):
                raise step
            else:
                assert isinstance(step, list)
                await send([bytes(r) for r in step])


@asynccontextmanager
async def gateway_server(sessions: ScriptedSessions, port: int = 0) -> AsyncIterator[str]:
    topology = Topology(cell="zone1", keyspaces={KS: KeyspaceInfo(KS, ["-80", "80-"])})
    gateway = Gateway(topology=topology, sources=None)  # type: ignore[arg-type]
    async with open_gateway_server(gateway, sessions, StaticTableCatalog(), port=port) as server:
        yield server.address


async def tail(
    address: str, cfg: TailConfig | None = None, store: CheckpointStore | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with trio.fail_after(20):
        status = await run_tail(
            cfg or TailConfig(stream=StreamOptions(keyspace=KS)),
            grpc_connector(address),
            out,
            err,
            store=store,
            backoff=Backoff(base=0.02, cap=0.1, rng=random.Random(1)),
        )
    return status, out.getvalue(), err.getvalue()


def ids(out: str) -> list[int]:
    return [json.loads(line)["data"]["id"] for line in out.splitlines()]


async def test_streams_over_grpc_and_ends_on_ok(aio_loop: None) -> None:
    one = transaction(1, rows=2, with_field=True)
    two = transaction(2, rows=1)
    sessions = ScriptedSessions(
        [
            [response([vgtid_event("-80", ("-80", "MySQL56/u:1-0")), simple(E.OTHER)])],
            [response(one[:3]), response(one[3:])],
            [response(two)],
        ]
    )
    cfg = TailConfig(
        stream=StreamOptions(
            keyspace=KS, shard="-80", tables=("customer",), heartbeat=5, tablet_type="replica"
        )
    )
    async with gateway_server(sessions) as address:
        status, out, err = await tail(address, cfg)
    assert status == EXIT_OK, err
    assert ids(out) == [100, 101, 200]
    [request] = sessions.requests
    assert request.tablet_type == topodata.TabletType.REPLICA
    assert request.vgtid == vgtid(("-80", "current"))
    assert request.filter is not None
    assert request.filter.rules[0].filter == "select * from `customer`"
    assert request.flags is not None and request.flags.heartbeat_interval == 5


async def test_server_errors_stop_with_their_message(aio_loop: None) -> None:
    message = "failed to resolve vstream parameters: keyspace 'nope' not found"
    sessions = ScriptedSessions(
        [VStreamError(Code.INVALID_ARGUMENT, message)],
        [[response(transaction(1, with_field=True))], VStreamError(Code.NOT_FOUND, "gone")],
    )
    async with gateway_server(sessions) as address:
        status, _, err = await tail(address)
        assert status == EXIT_USAGE
        assert f"INVALID_ARGUMENT: {message}" in err
        status, out, err = await tail(address)
        assert status == EXIT_ERROR and ids(out) == [100]
        assert "NOT_FOUND: gone" in err


async def test_unavailable_reconnects_from_the_checkpoint(aio_loop: None, tmp_path: Any) -> None:
    one = transaction(1, with_field=True)
    two = transaction(2, rows=2, with_field=True)
    sessions = ScriptedSessions(
        [[response(one), response(two[:3])], VStreamError(Code.UNAVAILABLE, "tablet lost")],
        [[response(two)]],
    )
    with CheckpointStore(tmp_path / "cp.db") as store:
        async with gateway_server(sessions) as address:
            status, out, err = await tail(address, store=store)
        assert status == EXIT_OK, err
        assert ids(out) == [100, 200, 201]
        assert sessions.requests[1].vgtid == vgtid(("-80", "MySQL56/u:1-1"))
        assert store.load("vsmux-tail") == vgtid(("-80", "MySQL56/u:1-2"))
    assert "tablet lost; reconnecting" in err


async def test_gateway_restart_mid_stream(aio_loop: None) -> None:
    first = ScriptedSessions([[response(transaction(1, with_field=True))], HANG])
    second = ScriptedSessions([[response(transaction(2, with_field=True))]])
    out, err = WatchedIO(), WatchedIO()
    status: list[int] = []
    done = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            async with gateway_server(first) as address:

                async def run() -> None:
                    status.append(
                        await run_tail(
                            TailConfig(stream=StreamOptions(keyspace=KS)),
                            grpc_connector(address),
                            out,
                            err,
                            backoff=Backoff(base=0.02, cap=0.1),
                        )
                    )
                    done.set()

                nursery.start_soon(run)
                await out.wait_for("\n")
            # The gateway is gone: tail retries (connection refused) until it is back.
            await err.wait_for("failed or dropped")
            port = split_address(address)[1]
            async with gateway_server(second, port=port):
                await done.wait()
    assert status == [EXIT_OK]
    assert ids(out.getvalue()) == [100, 200]
    assert second.requests[0].vgtid == vgtid(("-80", "MySQL56/u:1-1"))
    assert "server shutting down" in err.getvalue()


async def test_refused_connection_is_unavailable(aio_loop: None) -> None:
    async with gateway_server(ScriptedSessions()) as address:
        port = split_address(address)[1]
    with pytest.raises(VStreamError) as info:
        async with open_vstream(f"127.0.0.1:{port}", vtgate.VStreamRequest()):
            pass
    assert info.value.code == Code.UNAVAILABLE
    assert f"connection to 127.0.0.1:{port} failed or dropped" in info.value.message


@pytest.mark.parametrize("address", ["nohost", "host:", ":15991", "host:port"])
async def test_bad_addresses(address: str) -> None:
    with pytest.raises(VStreamError, match="must look like host:port") as info:
        async with open_vstream(address, vtgate.VStreamRequest()):
            pass
    assert info.value.code == Code.INVALID_ARGUMENT


def test_ipv6_address() -> None:
    assert split_address("[::1]:15991") == ("::1", 15991)
