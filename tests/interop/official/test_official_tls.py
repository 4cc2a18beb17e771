"""The official-proto grpcio client over TLS and mutual TLS (``grpc.ssl_channel_credentials``).

The gateway runs with mutual TLS in front of simulated tablets that are
themselves served over mutual TLS and reached with the gateway's own client
certificate, all with certificates made for the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
import trio_asyncio

from tests.interop.official.official_client import vstream_request
from tests.transport.certs import CertAuthority, CertFiles
from vsmux.mux import Gateway, run_vstream
from vsmux.server.app import open_gateway_server
from vsmux.server.directory import RoutingDirectory
from vsmux.server.tables import StaticTableCatalog
from vsmux.sources import SimulatedCluster
from vsmux.transport import (
    ClientTls,
    ServerTls,
    TlsFiles,
    open_tablet_channels,
    serve_cluster_tablets,
)

pytestmark = pytest.mark.clients

KS = "commerce"
DEADLINE = 20.0


@asynccontextmanager
async def tls_stack(ca: CertAuthority) -> AsyncIterator[int]:
    """A mutual-TLS gateway over mutual-TLS tablets with a running workload; its port."""
    tablet, gateway = ca.issue("tablet"), ca.issue("gateway")
    as_client = ca.issue("vsmux-gateway", server=False, client=True)
    cluster = SimulatedCluster.build({KS: ["-80", "80-"]}, seed=3)
    async with (
        trio_asyncio.open_loop(),
        serve_cluster_tablets(
            cluster, "127.0.0.1", tls=ServerTls(TlsFiles(tablet.cert, tablet.key, ca.cert_path))
        ) as topology,
        open_tablet_channels(
            5, tls=ClientTls.load(TlsFiles(as_client.cert, as_client.key, ca.cert_path))
        ) as channels,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(cluster.run_workload, 100.0)
        gw = Gateway(topology, RoutingDirectory(channels, None))
        tls = ServerTls(TlsFiles(gateway.cert, gateway.key, ca.cert_path))
        async with open_gateway_server(gw, run_vstream, StaticTableCatalog({}), tls=tls) as server:
            yield server.port
        nursery.cancel_scope.cancel()


def credentials(ca: CertAuthority, client: CertFiles | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.cert_path.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )


def first_responses(
    official: Any, port: int, creds: grpc.ChannelCredentials, count: int
) -> list[Any]:
    """``count`` VStream responses through grpcio's secure channel (blocking)."""
    request = vstream_request(official, (KS, "", "current"))
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        call = official.vtgateservice_grpc.VitessStub(channel).VStream(request, timeout=DEADLINE)
        got = []
        try:
            for response in call:
                got.append(response)
                if len(got) == count:
                    break
        finally:
            call.cancel()
    return got


async def test_grpcio_with_ssl_credentials_streams_from_a_mutual_tls_gateway(
    official: Any, tmp_path: Path
) -> None:
    ca = CertAuthority(tmp_path / "pki")
    client = ca.issue("debezium", server=False, client=True)
    async with tls_stack(ca) as port:
        with trio.fail_after(DEADLINE + 10):
            got = await trio.to_thread.run_sync(
                first_responses, official, port, credentials(ca, client), 6
            )
    events = [event for response in got for event in response.events]
    vgtid = official.binlogdata.VEventType.Value("VGTID")
    assert len(got) == 6
    assert any(event.type == vgtid for event in events)


async def test_grpcio_without_a_client_certificate_or_trusting_another_ca_is_refused(
    official: Any, tmp_path: Path
) -> None:
    ca = CertAuthority(tmp_path / "pki")
    other = CertAuthority(tmp_path / "other", "other CA")
    stranger = other.issue("stranger", server=False, client=True)
    async with tls_stack(ca) as port:
        for creds in (credentials(ca, None), credentials(other, stranger)):
            with trio.fail_after(DEADLINE + 10), pytest.raises(grpc.RpcError) as info:
                await trio.to_thread.run_sync(first_responses, official, port, creds, 1)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
