"""Extra health entries (``vsmux.topology``): asked by name, apart from the overall status."""

from __future__ import annotations

import trio_asyncio
from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from tests.server.gw_helpers import in_asyncio
from vsmux.core.settings import GatewaySettings
from vsmux.mux import Gateway, run_vstream
from vsmux.server.app import open_gateway_server
from vsmux.server.standalone import TOPOLOGY_HEALTH
from vsmux.server.tables import ClusterTableCatalog, StaticTableCatalog
from vsmux.sources import SimulatedCluster

SERVING = HealthCheckResponse.SERVING
NOT_SERVING = HealthCheckResponse.NOT_SERVING


async def status_of(port: int, service: str) -> int:
    async def check() -> int:
        channel = Channel("127.0.0.1", port)
        try:
            reply = await HealthStub(channel).Check(HealthCheckRequest(service=service))
            assert reply is not None
            return int(reply.status)
        finally:
            channel.close()

    return await in_asyncio(check)


async def test_a_named_entry_goes_down_while_the_gateway_stays_serving() -> None:
    cluster = SimulatedCluster.build({"commerce": ["-"]}, seed=1)
    gateway = Gateway(cluster.topology, cluster, GatewaySettings())
    catalog = ClusterTableCatalog(cluster, StaticTableCatalog())
    async with (
        trio_asyncio.open_loop(),
        open_gateway_server(
            gateway, run_vstream, catalog, health_names=(TOPOLOGY_HEALTH,)
        ) as server,
    ):
        assert await status_of(server.port, TOPOLOGY_HEALTH) == SERVING
        server.server.set_health(TOPOLOGY_HEALTH, False)
        assert await status_of(server.port, TOPOLOGY_HEALTH) == NOT_SERVING
        assert await status_of(server.port, "") == SERVING
        assert await status_of(server.port, "vtgateservice.Vitess") == SERVING
        server.server.set_health(TOPOLOGY_HEALTH, True)
        assert await status_of(server.port, TOPOLOGY_HEALTH) == SERVING
