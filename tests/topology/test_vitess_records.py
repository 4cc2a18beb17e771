"""Vitess topology records (etcd2 layout) into a Topology, without I/O."""

from __future__ import annotations

import pytest

from vsmux.proto import topodata, vschema
from vsmux.proto.topodata import TabletType
from vsmux.topology import (
    KeyspaceInfo,
    RecordError,
    TabletInfo,
    Topology,
    VitessRecords,
    cells_alias_record,
    serving_shards,
    vitess_records,
)

GLOBAL = "/vitess/global"
CELL = "/vitess/zone1"


def _srv(*shards: str) -> bytes:
    refs = []
    for name in shards:
        lo, _, hi = name.partition("-")
        refs.append(
            topodata.ShardReference(
                name=name,
                key_range=topodata.KeyRange(start=bytes.fromhex(lo), end=bytes.fromhex(hi)),
            )
        )
    return bytes(
        topodata.SrvKeyspace(
            partitions=[
                topodata.SrvKeyspaceKeyspacePartition(
                    served_type=TabletType.PRIMARY, shard_references=refs
                )
            ]
        )
    )


def _tablet(uid: int, keyspace: str, shard: str, kind: TabletType, port: int = 0) -> bytes:
    return bytes(
        topodata.Tablet(
            alias=topodata.TabletAlias(cell="zone1", uid=uid),
            hostname="10.0.0.1",
            port_map={"grpc": port or 15000 + uid, "vt": 14000 + uid},
            keyspace=keyspace,
            shard=shard,
            type=kind,
        )
    )


def _cell_info() -> bytes:
    return bytes(topodata.CellInfo(server_address="etcd:2379", root=CELL))


def _records() -> VitessRecords:
    records = VitessRecords("zone1", GLOBAL)
    problems = records.load_global(
        {
            f"{GLOBAL}/cells/zone1/CellInfo": bytes(
                topodata.CellInfo(server_address="etcd:2379", root=CELL)
            ),
            f"{GLOBAL}/keyspaces/commerce/Keyspace": bytes(topodata.Keyspace()),
            f"{GLOBAL}/keyspaces/commerce/shards/-80/Shard": bytes(
                topodata.Shard(
                    primary_alias=topodata.TabletAlias(cell="zone1", uid=101),
                    is_primary_serving=True,
                )
            ),
            f"{GLOBAL}/keyspaces/commerce/shards/-80/locks/x": b"lock",
        }
    )
    assert problems == []
    location = records.cell_location()
    assert location is not None
    assert (location.server_address, location.root) == ("etcd:2379", CELL)
    problems = records.load_cell(
        CELL,
        {
            f"{CELL}/keyspaces/commerce/SrvKeyspace": _srv("80-", "-80"),
            f"{CELL}/tablets/zone1-0000000101/Tablet": _tablet(
                101, "commerce", "-80", TabletType.PRIMARY
            ),
            f"{CELL}/tablets/zone1-0000000102/Tablet": _tablet(
                102, "commerce", "-80", TabletType.REPLICA
            ),
            f"{CELL}/tablets/zone1-0000000201/Tablet": _tablet(
                201, "commerce", "80-", TabletType.PRIMARY
            ),
            f"{CELL}/SrvVSchema": bytes(
                vschema.SrvVSchema(
                    keyspaces={
                        "commerce": vschema.Keyspace(
                            sharded=True, tables={"orders": vschema.Table(), "c": vschema.Table()}
                        )
                    }
                )
            ),
        },
    )
    assert problems == []
    return records


def test_records_become_a_topology() -> None:
    topology = _records().topology()
    assert topology.cell == "zone1"
    assert topology.keyspaces == {
        "commerce": KeyspaceInfo("commerce", ["-80", "80-"], ["c", "orders"])
    }
    assert topology.tablets_for("commerce", "-80") == [
        TabletInfo("commerce", "-80", "zone1", 101, TabletType.PRIMARY, "10.0.0.1:15101"),
        TabletInfo("commerce", "-80", "zone1", 102, TabletType.REPLICA, "10.0.0.1:15102"),
    ]
    assert [t.alias for t in topology.tablets_for("commerce", "80-")] == ["zone1-0000000201"]


def test_a_primary_change_in_the_shard_record_retypes_the_tablets() -> None:
    records = _records()
    topology = records.topology()
    shard = topodata.Shard(primary_alias=topodata.TabletAlias(cell="zone1", uid=102))
    assert (
        records.apply_global(f"{GLOBAL}/keyspaces/commerce/shards/-80/Shard", bytes(shard)) is None
    )
    assert records.update(topology)
    kinds = {t.uid: t.tablet_type for t in topology.tablets_for("commerce", "-80")}
    assert kinds == {101: TabletType.REPLICA, 102: TabletType.PRIMARY}
    assert not records.update(topology)


def test_a_reshard_updates_the_same_keyspace_object() -> None:
    records = _records()
    topology = records.topology()
    info = topology.keyspaces["commerce"]
    key = f"{CELL}/keyspaces/commerce/SrvKeyspace"
    assert records.apply_cell(key, _srv("-40", "40-80", "80-c0", "c0-")) is None
    assert records.update(topology)
    assert topology.keyspaces["commerce"] is info
    assert info.shards == ["-40", "40-80", "80-c0", "c0-"]


def test_deleted_records_leave_the_topology() -> None:
    records = _records()
    topology = records.topology()
    records.apply_cell(f"{CELL}/tablets/zone1-0000000102/Tablet", None)
    records.apply_cell(f"{CELL}/keyspaces/commerce/SrvKeyspace", None)
    assert records.update(topology)
    assert topology.keyspaces == {}
    assert [t.uid for t in topology.tablets] == [101, 201]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (
            f"{CELL}/tablets/zone1-0000000102/Tablet",
            b"\xff\xff\xff",
            "not a topodata.Tablet record",
        ),
        (
            f"{CELL}/tablets/zone1-0000000102/Tablet",
            bytes(
                topodata.Tablet(
                    alias=topodata.TabletAlias(cell="zone1", uid=102),
                    hostname="h",
                    keyspace="commerce",
                    shard="-80",
                    port_map={"vt": 1},
                )
            ),
            "no gRPC port",
        ),
        (
            f"{CELL}/tablets/zone1-0000000102/Tablet",
            _tablet(103, "commerce", "-80", TabletType.REPLICA),
            "alias does not match",
        ),
        (
            f"{CELL}/keyspaces/commerce/SrvKeyspace",
            _srv("-40", "80-"),
            "key-range gap between shard '-40' and shard '80-'",
        ),
        (f"{CELL}/keyspaces/commerce/SrvKeyspace", _srv("-80"), "gap after shard '-80'"),
    ],
)
def test_a_bad_record_is_refused_and_the_last_good_one_stays(
    key: str, value: bytes, reason: str
) -> None:
    records = _records()
    before = records.topology()
    problem = records.apply_cell(key, value)
    assert problem is not None
    assert problem.startswith(key + ": ")
    assert reason in problem
    after = records.topology()
    assert after.keyspaces == before.keyspaces
    assert list(after.tablets) == list(before.tablets)


def test_a_bad_record_at_load_is_reported_and_the_rest_is_used() -> None:
    records = VitessRecords("zone1", GLOBAL)
    problems = records.load_cell(
        CELL,
        {
            f"{CELL}/keyspaces/good/SrvKeyspace": _srv("-"),
            f"{CELL}/keyspaces/bad/SrvKeyspace": _srv("-80", "c0-"),
            f"{CELL}/tablets/zone1-0000000001/Tablet": _tablet(1, "good", "-", TabletType.PRIMARY),
        },
    )
    assert len(problems) == 1
    assert problems[0].startswith(f"{CELL}/keyspaces/bad/SrvKeyspace: key-range gap")
    assert records.topology().keyspace_names() == ["good"]


def test_a_tablet_not_in_a_shard_yet_serves_nothing() -> None:
    records = _records()
    key = f"{CELL}/tablets/zone1-0000000301/Tablet"
    assert records.apply_cell(key, _tablet(301, "", "", TabletType.SPARE)) is None
    assert 301 not in {t.uid for t in records.topology().tablets}


def test_serving_shards_unsharded_and_overlaps() -> None:
    unsharded = topodata.SrvKeyspace(
        partitions=[
            topodata.SrvKeyspaceKeyspacePartition(
                served_type=TabletType.PRIMARY,
                shard_references=[topodata.ShardReference(name="0")],
            )
        ]
    )
    assert serving_shards(unsharded) == ["0"]
    with pytest.raises(RecordError, match="overlap"):
        serving_shards(topodata.SrvKeyspace().parse(_srv("-80", "40-")))
    with pytest.raises(RecordError, match="no PRIMARY partition"):
        serving_shards(topodata.SrvKeyspace())


def test_published_records_read_back_as_the_same_topology() -> None:
    topology = Topology(
        cell="zone1",
        keyspaces={"commerce": KeyspaceInfo("commerce", ["-80", "80-"], ["orders"])},
        tablets=[
            TabletInfo("commerce", "-80", "zone1", 101, TabletType.PRIMARY, "127.0.0.1:15101"),
            TabletInfo("commerce", "-80", "zone1", 102, TabletType.REPLICA, "127.0.0.1:15102"),
            TabletInfo("commerce", "80-", "zone1", 201, TabletType.PRIMARY, "127.0.0.1:15201"),
            # A shard no longer served after a reshard still has its records.
            TabletInfo("commerce", "0", "zone1", 1, TabletType.PRIMARY, "127.0.0.1:15001"),
        ],
    )
    published = vitess_records(
        topology, global_root=GLOBAL, cell_root=CELL, cell_address="127.0.0.1:2379"
    )
    shard = topodata.Shard().parse(published[f"{GLOBAL}/keyspaces/commerce/shards/0/Shard"])
    assert not shard.is_primary_serving
    records = VitessRecords("zone1", GLOBAL)
    assert records.load_global(published) == []
    location = records.cell_location()
    assert location is not None
    assert records.load_cell(location.root, published) == []
    read = records.topology()
    assert read.keyspaces == topology.keyspaces
    assert sorted(read.tablets, key=lambda t: t.uid) == sorted(
        topology.tablets, key=lambda t: t.uid
    )


def test_a_reload_deletes_what_is_gone_and_keeps_last_good_values() -> None:
    records = _records()
    location = records.cell_location()
    assert location is not None
    tablet_101 = f"{CELL}/tablets/zone1-0000000101/Tablet"
    reread = {
        f"{CELL}/keyspaces/commerce/SrvKeyspace": _srv("-80", "c0-"),  # now bad: a gap
        tablet_101: b"\xff\xff\xff",  # now bad: not a Tablet
        f"{CELL}/tablets/zone1-0000000201/Tablet": _tablet(
            201, "commerce", "80-", TabletType.REPLICA
        ),
        # zone1-0000000102 and SrvVSchema are gone
    }
    problems = records.load_cell(CELL, reread)
    assert sorted(p.split(":")[0] for p in problems) == sorted(
        [f"{CELL}/keyspaces/commerce/SrvKeyspace", tablet_101]
    )
    topology = records.topology()
    assert topology.serving_shards("commerce") == ["-80", "80-"]
    assert topology.keyspaces["commerce"].tables is None
    assert {t.uid: t.tablet_type for t in topology.tablets} == {
        101: TabletType.PRIMARY,
        201: TabletType.REPLICA,
    }
    # The global records: a shard record gone takes its primary with it.
    assert records.load_global({f"{GLOBAL}/cells/zone1/CellInfo": _cell_info()}) == []
    assert records.cell_location() == location


def _alias_key(name: str) -> str:
    return f"{GLOBAL}/cells_aliases/{name}/CellsAlias"


def test_cells_alias_records_become_the_topology_s_aliases() -> None:
    records = _records()
    # Field 2, as in Vitess's topodata.proto; written by hand to pin the wire format.
    assert records.apply_global(_alias_key("region1"), b"\x12\x05zone1\x12\x05zone2") is None
    assert records.apply_global(_alias_key("region2"), cells_alias_record(["zone3"])) is None
    topology = records.topology()
    assert topology.cells_aliases == {"region1": ["zone1", "zone2"], "region2": ["zone3"]}


def test_a_cells_alias_change_and_deletion_reach_the_topology() -> None:
    records = _records()
    topology = records.topology()
    assert topology.cells_aliases == {}
    key = _alias_key("region1")
    assert records.apply_global(key, cells_alias_record(["zone1"])) is None
    assert records.update(topology)
    assert topology.cells_aliases == {"region1": ["zone1"]}
    assert records.apply_global(key, cells_alias_record(["zone1", "zone2", "zone1"])) is None
    assert records.update(topology)
    assert topology.cells_aliases == {"region1": ["zone1", "zone2"]}, "each cell once"
    assert records.update(topology) is False
    assert records.apply_global(key, None) is None
    assert records.update(topology)
    assert topology.cells_aliases == {}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(
            cells_alias_record(["zone4", "zone2"]),
            "cell 'zone2' is already in alias 'region1'; a cell belongs to one alias at most",
            id="overlap",
        ),
        pytest.param(b"\x12\x05zo", "not a topodata.CellsAlias record", id="truncated"),
        pytest.param(b"\x12\x02\xff\xfe", "not a topodata.CellsAlias record", id="not-utf8"),
        pytest.param(cells_alias_record(["zone4", ""]), "it names an empty cell", id="empty-cell"),
    ],
)
def test_a_bad_cells_alias_is_refused_and_the_last_good_one_stays(
    value: bytes, reason: str
) -> None:
    records = _records()
    assert (
        records.apply_global(_alias_key("region1"), cells_alias_record(["zone1", "zone2"])) is None
    )
    assert records.apply_global(_alias_key("region2"), cells_alias_record(["zone3"])) is None
    problem = records.apply_global(_alias_key("region2"), value)
    assert problem is not None
    assert problem.startswith(_alias_key("region2") + ": ")
    assert reason in problem
    assert problem.endswith("; skipped")
    assert records.cells_aliases() == {"region1": ["zone1", "zone2"], "region2": ["zone3"]}


def test_overlapping_aliases_at_load_keep_the_first_by_name() -> None:
    records = VitessRecords("zone1", GLOBAL)
    problems = records.load_global(
        {
            _alias_key("b"): cells_alias_record(["zone2", "zone3"]),
            _alias_key("a"): cells_alias_record(["zone1", "zone2"]),
        }
    )
    assert problems == [
        f"{_alias_key('b')}: cell 'zone2' is already in alias 'a'; a cell belongs to one "
        "alias at most (remove it from one of them); skipped"
    ]
    assert records.cells_aliases() == {"a": ["zone1", "zone2"]}


def test_an_alias_named_like_a_cell_is_read_as_the_cell() -> None:
    records = _records()  # has the CellInfo of zone1
    assert records.apply_global(_alias_key("zone1"), cells_alias_record(["zone7"])) is None
    assert records.cells_aliases() == {}
    assert records.apply_global(f"{GLOBAL}/cells/zone1/CellInfo", None) is None
    assert records.cells_aliases() == {"zone1": ["zone7"]}


def test_published_cells_aliases_read_back() -> None:
    topology = Topology(
        cell="zone1",
        keyspaces={"commerce": KeyspaceInfo("commerce", ["0"])},
        tablets=[TabletInfo("commerce", "0", "zone1", 1, TabletType.PRIMARY, "127.0.0.1:15001")],
        cells_aliases={"region1": ["zone1", "zone2"], "region2": ["zone3"]},
    )
    published = vitess_records(
        topology, global_root=GLOBAL, cell_root=CELL, cell_address="127.0.0.1:2379"
    )
    records = VitessRecords("zone1", GLOBAL)
    assert records.load_global(published) == []
    assert records.load_cell(CELL, published) == []
    assert records.topology().cells_aliases == topology.cells_aliases


ZONE2 = "/vitess/zone2"


def _zone2_tablet(uid: int, shard: str, kind: TabletType = TabletType.REPLICA) -> bytes:
    return bytes(
        topodata.Tablet(
            alias=topodata.TabletAlias(cell="zone2", uid=uid),
            hostname="10.0.0.2",
            port_map={"grpc": 16000 + uid},
            keyspace="commerce",
            shard=shard,
            type=kind,
        )
    )


def test_another_cells_tablets_join_the_topology_but_not_its_routing() -> None:
    records = _records()
    problems = records.load_other_cell(
        "zone2",
        ZONE2,
        {
            f"{ZONE2}/tablets/zone2-0000000301/Tablet": _zone2_tablet(301, "-80"),
            # Recorded PRIMARY, but the Shard record names zone1-101: a replica.
            f"{ZONE2}/tablets/zone2-0000000302/Tablet": _zone2_tablet(
                302, "-80", TabletType.PRIMARY
            ),
            # Another cell's serving graph does not route the gateway's requests.
            f"{ZONE2}/keyspaces/other/SrvKeyspace": _srv("-"),
            f"{ZONE2}/SrvVSchema": bytes(vschema.SrvVSchema()),
        },
    )
    assert problems == []
    topology = records.topology()
    assert list(topology.keyspaces) == ["commerce"]
    assert {t.alias: t.tablet_type for t in topology.tablets_for("commerce", "-80")} == {
        "zone1-0000000101": TabletType.PRIMARY,
        "zone1-0000000102": TabletType.REPLICA,
        "zone2-0000000301": TabletType.REPLICA,
        "zone2-0000000302": TabletType.REPLICA,
    }
    assert records.other_cell_tablets("zone2") == 2
    assert records.describe() == "1 keyspaces, 2 serving shards, 5 tablets"


def test_another_cells_changes_bad_records_and_forgetting() -> None:
    records = _records()
    records.load_other_cell(
        "zone2", ZONE2, {f"{ZONE2}/tablets/zone2-0000000301/Tablet": _zone2_tablet(301, "-80")}
    )
    key = f"{ZONE2}/tablets/zone2-0000000302/Tablet"
    assert records.apply_other_cell("zone2", key, _zone2_tablet(302, "80-")) is None
    problem = records.apply_other_cell("zone2", key, b"\x0a\x10truncated")
    assert problem is not None
    assert problem.startswith(f"{key}: not a topodata.Tablet record")
    # The refused value leaves the last good one.
    assert [t.uid for t in records.topology().tablets_for("commerce", "80-")] == [201, 302]
    # A key outside the cell's root, or of a cell never loaded, is ignored.
    assert (
        records.apply_other_cell("zone2", f"{CELL}/tablets/zone1-0000000109/Tablet", b"x") is None
    )
    assert records.apply_other_cell("zone3", key, b"x") is None
    assert records.apply_other_cell("zone2", key, None) is None
    assert records.other_cell_tablets("zone2") == 1
    # A load from another root starts the cell afresh.
    assert records.load_other_cell("zone2", "/elsewhere/zone2", {}) == []
    assert records.other_cell_tablets("zone2") == 0
    records.load_other_cell(
        "zone2", ZONE2, {f"{ZONE2}/tablets/zone2-0000000301/Tablet": _zone2_tablet(301, "-80")}
    )
    records.forget_other_cell("zone2")
    assert all(t.cell == "zone1" for t in records.topology().tablets)


def test_a_bad_tablet_of_another_cell_at_load_is_reported_and_the_rest_is_used() -> None:
    records = _records()
    bad = f"{ZONE2}/tablets/zone2-0000000399/Tablet"
    problems = records.load_other_cell(
        "zone2",
        ZONE2,
        {
            bad: _zone2_tablet(398, "-80"),  # its alias is not the key's
            f"{ZONE2}/tablets/zone2-0000000301/Tablet": _zone2_tablet(301, "-80"),
        },
    )
    assert problems == [f"{bad}: its alias does not match the key's 'zone2-0000000399'; skipped"]
    assert records.other_cell_tablets("zone2") == 1


def test_a_cell_location_by_name() -> None:
    records = _records()
    assert records.cell_location("zone2") is None
    records.apply_global(
        f"{GLOBAL}/cells/zone2/CellInfo",
        bytes(topodata.CellInfo(server_address="etcd2:2379", root=ZONE2)),
    )
    location = records.cell_location("zone2")
    assert location is not None
    assert (location.server_address, location.root) == ("etcd2:2379", ZONE2)
    assert records.cell_location() == records.cell_location("zone1")
