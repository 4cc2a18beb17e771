"""Authentication, per-user access and limits, over real loopback gRPC.

The gateway runs over a simulated cluster with three keyspaces; a directory
in front of its tablets records every tablet stream opened (and the request
it was opened with), so a refused call is seen to have opened none.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_asyncio
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from tests.server.gw_helpers import execute, in_asyncio, vstream
from tests.transport.certs import CertAuthority
from vsmux.cli.tail import PASSWORD_ENV
from vsmux.core.access import parse_access_file
from vsmux.core.auth import MtlsAuthenticator, StaticAuthenticator, parse_password_file
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, run_vstream
from vsmux.proto import binlogdata, query, vtgate, vtgateservice, vtrpc
from vsmux.server.app import GatewayServer, open_gateway_server
from vsmux.server.auth import Security
from vsmux.server.metrics_http import render_metrics
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog
from vsmux.sources import SimulatedCluster
from vsmux.transport import ServerTls, TlsFiles
from vsmux.transport._tls import client_context

PASSWORDS = """[
  {"Username": "debezium", "Password": "s3cret"},
  {"Username": "ops", "Password": "0ps-pass", "UserData": "ops", "Groups": ["admins"]}
]"""

ACCESS = """
[users.debezium]
keyspaces = ["commerce", "customer"]

[users.ops]
keyspaces = ["*"]
"""

DEBEZIUM = {"username": "debezium", "password": "s3cret"}
OPS = {"username": "ops", "password": "0ps-pass"}


class RecordingDirectory:
    """The cluster's sources, recording each tablet stream's alias and request."""

    def __init__(self, cluster: SimulatedCluster) -> None:
        self._cluster = cluster
        self.opened: list[tuple[str, binlogdata.VStreamRequest]] = []
        self._opened_one = trio.Event()

    def source_for(self, tablet: Any) -> Any:
        source = self._cluster.source_for(tablet)
        directory = self

        class Recorded:
            @property
            def tablet(self) -> Any:
                return source.tablet

            def vstream(self, request: binlogdata.VStreamRequest) -> Any:
                directory.opened.append((tablet.keyspace, request))
                directory._opened_one.set()
                directory._opened_one = trio.Event()
                return source.vstream(request)

            def stream_health(self) -> Any:
                return source.stream_health()

        return Recorded()

    def keyspaces(self) -> set[str]:
        return {keyspace for keyspace, _ in self.opened}

    async def wait_for_keyspaces(self, expected: set[str]) -> None:
        """Until streams of every keyspace in ``expected`` have opened."""
        with trio.fail_after(10):
            while not expected <= self.keyspaces():
                await self._opened_one.wait()


@dataclass
class Secured:
    server: GatewayServer
    gateway: Gateway
    directory: RecordingDirectory

    @property
    def port(self) -> int:
        return self.server.port


@asynccontextmanager
async def open_secured(
    security: Security,
    settings: GatewaySettings | None = None,
    tls: ServerTls | None = None,
) -> AsyncIterator[Secured]:
    cluster = SimulatedCluster.build(
        {"commerce": ["-80", "80-"], "customer": ["-"], "internal": ["-"]}, seed=3
    )
    directory = RecordingDirectory(cluster)
    gateway = Gateway(cluster.topology, directory, settings or GatewaySettings())
    catalog = ClusterTableCatalog(cluster, StaticTableCatalog())
    async with (
        trio_asyncio.open_loop(),
        open_gateway_server(gateway, run_vstream, catalog, tls=tls, security=security) as server,
    ):
        yield Secured(server, gateway, directory)


@asynccontextmanager
async def held_stream(
    port: int, request: vtgate.VStreamRequest, metadata: dict[str, str]
) -> AsyncIterator[None]:
    """A VStream call kept open (its first response arrived) while the block runs."""
    first_reply = trio.Event()

    async def call() -> None:
        channel = Channel("127.0.0.1", port)
        try:
            async for _ in vtgateservice.VitessStub(channel).v_stream(request, metadata=metadata):
                first_reply.set()
        finally:
            channel.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio_asyncio.aio_as_trio(call))
        with trio.fail_after(10):
            await first_reply.wait()
        yield
        nursery.cancel_scope.cancel()


def static_security(access: bool = True) -> Security:
    return Security(
        StaticAuthenticator(parse_password_file(PASSWORDS)),
        parse_access_file(ACCESS) if access else None,
    )


def current(keyspace: str) -> vtgate.VStreamRequest:
    return vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace=keyspace, gtid="current")]
        )
    )


async def refused(port: int, request: vtgate.VStreamRequest, **kwargs: Any) -> GRPCError:
    with pytest.raises(GRPCError) as info:
        await vstream(port, request, limit=1, timeout=10, **kwargs)
    return info.value


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {"username": "debezium"},
        {"username": "debezium", "password": "wrong"},
        {"username": "nobody", "password": "s3cret"},
    ],
    ids=["nothing", "no-password", "wrong-password", "unknown-user"],
)
async def test_unauthenticated_calls_are_refused_before_anything_opens(
    metadata: dict[str, str] | None,
) -> None:
    async with open_secured(static_security()) as gw:
        error = await refused(gw.port, current("commerce"), metadata=metadata)
        assert error.status == Status.UNAUTHENTICATED
        assert "s3cret" not in (error.message or "") and "wrong" not in (error.message or "")
        with pytest.raises(GRPCError) as info:
            await execute(gw.port, "SHOW DATABASES", metadata=metadata)
        assert info.value.status == Status.UNAUTHENTICATED
        assert gw.directory.opened == []
        assert gw.gateway.metrics.denials[("unauthenticated", "")] == 2


async def test_wrong_password_message_names_the_caller_only() -> None:
    async with open_secured(static_security()) as gw:
        error = await refused(
            gw.port, current("commerce"), metadata={"username": "debezium", "password": "nope"}
        )
    assert error.message == "auth failure: caller 'debezium' provided invalid credentials"


async def test_health_stays_open() -> None:
    async with open_secured(static_security()) as gw:

        async def check() -> HealthCheckResponse:
            channel = Channel("127.0.0.1", gw.port)
            try:
                reply: HealthCheckResponse = await HealthStub(channel).Check(HealthCheckRequest())
                return reply
            finally:
                channel.close()

        reply = await in_asyncio(check)
    assert reply.status == HealthCheckResponse.SERVING


async def test_authenticated_stream_names_the_user_to_the_tablets() -> None:
    async with open_secured(static_security()) as gw:
        request = current("customer")
        request.caller_id = vtrpc.CallerId(principal="spoofed", component="connector")
        responses = await vstream(gw.port, request, limit=1, timeout=10, metadata=DEBEZIUM)
        assert responses
        assert gw.directory.keyspaces() == {"customer"}
        _, sent = gw.directory.opened[0]
        assert sent.effective_caller_id == vtrpc.CallerId(
            principal="debezium", component="connector"
        )
        assert sent.immediate_caller_id == query.VtGateCallerId(username="vsmux")


async def test_keyspace_not_granted_is_permission_denied_and_opens_no_tablet_stream() -> None:
    async with open_secured(static_security()) as gw:
        error = await refused(gw.port, current("internal"), metadata=DEBEZIUM)
        assert error.status == Status.PERMISSION_DENIED
        assert error.message == "user 'debezium' may not stream keyspace 'internal'"
        assert gw.directory.opened == []
        assert gw.gateway.metrics.denials[("permission_denied", "debezium")] == 1
        text = render_metrics(gw.gateway.metrics).decode()
        assert 'vsmux_denials_total{reason="permission_denied",user="debezium"} 1.0' in text


async def test_regex_keyspace_streams_only_granted_keyspaces() -> None:
    async with open_secured(static_security()) as gw:
        async with held_stream(gw.port, current("/.*"), DEBEZIUM):
            await gw.directory.wait_for_keyspaces({"commerce", "customer"})
        assert "internal" not in gw.directory.keyspaces()
        # ops may read every keyspace
        error = await refused(gw.port, current("/intern"), metadata=DEBEZIUM)
        assert error.status == Status.PERMISSION_DENIED
        assert await vstream(gw.port, current("/intern"), limit=1, timeout=10, metadata=OPS)


async def test_metadata_lists_only_granted_keyspaces() -> None:
    async with open_secured(static_security()) as gw:

        def rows(response: vtgate.ExecuteResponse) -> list[str]:
            assert response.error is None, response.error
            assert response.result is not None
            return [r.values.decode() for r in response.result.rows]

        assert rows(await execute(gw.port, "SHOW DATABASES", metadata=DEBEZIUM)) == [
            "commerce",
            "customer",
        ]
        assert rows(await execute(gw.port, "SHOW VITESS_SHARDS", metadata=DEBEZIUM)) == [
            "commerce/-80",
            "commerce/80-",
            "customer/-",
        ]
        denied = await execute(gw.port, "SHOW TABLES FROM internal", metadata=DEBEZIUM)
        assert denied.error is not None and denied.error.code == vtrpc.Code.PERMISSION_DENIED
        assert "internal" in rows(await execute(gw.port, "SHOW DATABASES", metadata=OPS))


async def test_without_access_file_authenticated_users_read_everything() -> None:
    async with open_secured(static_security(access=False)) as gw:
        assert await vstream(gw.port, current("internal"), limit=1, timeout=10, metadata=DEBEZIUM)


async def test_streams_per_user_limit() -> None:
    settings = GatewaySettings(max_streams_per_user=1)
    async with (
        open_secured(static_security(), settings) as gw,
        held_stream(gw.port, current("commerce"), DEBEZIUM),
    ):
        error = await refused(gw.port, current("customer"), metadata=DEBEZIUM)
        assert error.status == Status.RESOURCE_EXHAUSTED
        assert "user 'debezium' already runs 1 VStream calls" in (error.message or "")
        assert "--max-streams-per-user" in (error.message or "")
        assert await vstream(gw.port, current("customer"), limit=1, timeout=10, metadata=OPS)
        assert gw.gateway.metrics.limit_hits[("max_streams_per_user", "debezium")] == 1
        text = render_metrics(gw.gateway.metrics).decode()
        assert 'vsmux_limit_hits_total{limit="max_streams_per_user",user="debezium"} 1.0' in text


async def test_new_streams_per_second_limit() -> None:
    settings = GatewaySettings(max_new_streams_per_second=0.01)
    async with open_secured(static_security(), settings) as gw:
        assert await vstream(gw.port, current("commerce"), limit=1, timeout=10, metadata=OPS)
        error = await refused(gw.port, current("commerce"), metadata=OPS)
        assert error.status == Status.RESOURCE_EXHAUSTED
        assert "--max-new-streams-per-second" in (error.message or "")
        assert gw.gateway.metrics.limit_hits[("max_new_streams_per_second", "ops")] == 1


async def test_mtls_admits_allowed_subjects_by_common_name(tmp_path: Path) -> None:
    ca = CertAuthority(tmp_path)
    server = ca.issue("gateway")
    allowed = ca.issue("debezium", server=False, client=True, organization="cdc")
    other = ca.issue("intruder", server=False, client=True, organization="elsewhere")
    tls = ServerTls(TlsFiles(server.cert, server.key, server.ca))
    security = Security(MtlsAuthenticator(("O=cdc",)), parse_access_file(ACCESS))

    def client(files: Any) -> Any:
        return client_context(TlsFiles(files.cert, files.key, files.ca))

    async with open_secured(security, tls=tls) as gw:
        request = current("commerce")
        assert await vstream(gw.port, request, limit=1, timeout=10, ssl_context=client(allowed))
        _, sent = gw.directory.opened[0]
        assert sent.effective_caller_id is not None
        assert sent.effective_caller_id.principal == "debezium"
        error = await refused(gw.port, request, ssl_context=client(other))
        assert error.status == Status.UNAUTHENTICATED
        assert "not authorized" in (error.message or "")
        error = await refused(gw.port, current("internal"), ssl_context=client(allowed))
        assert error.status == Status.PERMISSION_DENIED


async def run_tail(port: int, password: str | None, *extra: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    if password is not None:
        env[PASSWORD_ENV] = password
    command = [sys.executable, "-m", "vsmux", "tail", "--server", f"127.0.0.1:{port}", *extra]
    with trio.fail_after(30):
        result = await trio.run_process(
            command, env=env, capture_stdout=True, capture_stderr=True, check=False
        )
    return result.returncode, result.stderr.decode()


async def test_tail_sends_user_and_the_password_from_the_environment() -> None:
    async with open_secured(static_security()) as gw:
        args = ("--keyspace", "commerce", "--user", "ops", "--max-seconds", "1", "--quiet")
        code, err = await run_tail(gw.port, "0ps-pass", *args)
        assert code == 0, err
        assert {sent.effective_caller_id.principal for _, sent in gw.directory.opened} == {"ops"}
        code, err = await run_tail(gw.port, "wrong", *args)
        assert code == 1
        assert "invalid credentials" in err and "wrong" not in err
        code, err = await run_tail(gw.port, None, *args)
        assert code == 2
        assert f"the password in the environment variable {PASSWORD_ENV}" in err
