"""vtgate's cell choice: the gateway's own cell is a candidate even when not requested."""

from __future__ import annotations

import trio

from tests.mux.scripted import HANG, Client, Cluster, T, commit, gtid, outcome_within, request
from vsmux.proto import topodata

REPLICA = topodata.TabletType.REPLICA


async def test_local_cell_is_a_candidate_even_when_not_requested(
    autojump_clock: trio.abc.Clock,
) -> None:
    """vtgate's TestVStreamManagerGetCells ("with-opt-cells": cells "local,bb,cc" ->
    ["local:aa", "bb", "cc"]; "default-local-cell-alias": the local cell's alias is
    added too), and in later vtgate the tablet picker it moved to
    (go/vt/discovery/tablet_picker.go, NewTabletPicker: with PreferLocalWithAlias,
    "Add local cell to the list of cells for tablet picking", then its alias):
    with the default cell_preference the gateway's own cell is always in scope and
    first, whatever ``cells`` lists.

    vsmux once used only the requested cells: a REPLICA request with cells=zone2 on
    a gateway in zone1 ignored the zone1 replica, waited for a zone2 one and gave up
    after 90 s.
    """
    cluster = Cluster()  # gateway cell zone1
    cluster.scripted("ks", "-20", [[gtid("MySQL56/a:1-1"), commit()], HANG], tablet_type=REPLICA)
    client = Client()
    req = request(("ks", "-20", "current"), tablet_type=REPLICA, cells="zone2")
    outcome = await outcome_within(200, req, cluster.gateway(), client)
    assert outcome is None, f"vsmux gave up at {trio.current_time()} s: {outcome}"
    assert client.types() == [T.VGTID, T.COMMIT]
