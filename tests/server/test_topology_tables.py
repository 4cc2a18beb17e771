"""SHOW TABLES with an etcd topology: the tables its SrvVSchema names, read at each query."""

from __future__ import annotations

import pytest

from vsmux.errors import Code, VStreamError
from vsmux.server.tables import TopologyTableCatalog
from vsmux.topology import KeyspaceInfo, Topology


async def test_tables_follow_the_live_topology() -> None:
    topology = Topology(
        cell="zone1", keyspaces={"commerce": KeyspaceInfo("commerce", ["0"], ["a", "b"])}
    )
    catalog = TopologyTableCatalog(topology)
    assert await catalog.table_names("commerce") == ["a", "b"]
    topology.keyspaces["commerce"].tables = ["a", "b", "c"]  # a new SrvVSchema
    assert await catalog.table_names("commerce") == ["a", "b", "c"]


@pytest.mark.parametrize("keyspace", ["commerce", "unknown"])
async def test_no_tables_known_is_failed_precondition(keyspace: str) -> None:
    topology = Topology(cell="zone1", keyspaces={"commerce": KeyspaceInfo("commerce", ["0"])})
    with pytest.raises(VStreamError) as caught:
        await TopologyTableCatalog(topology).table_names(keyspace)
    assert caught.value.code == Code.FAILED_PRECONDITION
    assert f"keyspace {keyspace!r}" in caught.value.message
    assert "SrvVSchema" in caught.value.message
