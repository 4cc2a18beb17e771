"""Tablet candidates and health verdicts (docs/vitess.md sections 6.1-6.2)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsmux.core.picking import candidates, cell_tiers, expand_cells, health_problem, type_name
from vsmux.proto import query, topodata
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology

PRIMARY = topodata.TabletType.PRIMARY
REPLICA = topodata.TabletType.REPLICA
RDONLY = topodata.TabletType.RDONLY


def make_topology() -> Topology:
    def t(cell: str, uid: int, tablet_type: topodata.TabletType, shard: str = "-80") -> TabletInfo:
        return TabletInfo("customer", shard, cell, uid, tablet_type)

    return Topology(
        cell="zone1",
        keyspaces={"customer": KeyspaceInfo("customer", ["-80", "80-"])},
        tablets=[
            t("zone2", 200, REPLICA),
            t("zone1", 100, PRIMARY),
            t("zone1", 101, REPLICA),
            t("zone3", 300, REPLICA),
            t("zone2", 201, RDONLY),
            t("zone1", 102, REPLICA),
            t("zone2", 202, REPLICA),
            t("zone1", 110, PRIMARY, shard="80-"),
            t("zone1", 111, REPLICA, shard="80-"),
        ],
    )


def uids(tablets: list[TabletInfo]) -> list[int]:
    return [t.uid for t in tablets]


@pytest.mark.parametrize(
    ("tablet_type", "cells", "preference", "ignore", "expected"),
    [
        pytest.param(PRIMARY, ["zone2"], "onlyspecified", [], [100], id="primary-ignores-cells"),
        pytest.param(
            PRIMARY,
            ["zone1"],
            "preferlocalwithalias",
            ["zone1-0000000100"],
            [],
            id="primary-ignored",
        ),
        pytest.param(
            REPLICA, ["zone1"], "preferlocalwithalias", [], [101, 102], id="local-replicas"
        ),
        pytest.param(
            REPLICA,
            ["zone2", "zone3", "zone1"],
            "preferlocalwithalias",
            [],
            [101, 102, 200, 202, 300],
            id="local-cell-first-then-requested-order",
        ),
        pytest.param(
            REPLICA,
            ["zone2", "zone3", "zone1"],
            "onlyspecified",
            [],
            [200, 202, 300, 101, 102],
            id="onlyspecified-keeps-requested-order",
        ),
        pytest.param(
            REPLICA,
            ["zone3", "zone2"],
            "preferlocalwithalias",
            [],
            [101, 102, 300, 200, 202],
            id="local-cell-not-requested-still-comes-first",
        ),
        pytest.param(
            REPLICA,
            ["zone1", "zone2"],
            "preferlocalwithalias",
            ["zone1-0000000101", "zone2-0000000202"],
            [102, 200],
            id="ignore-list",
        ),
        pytest.param(RDONLY, ["zone1", "zone2"], "onlyspecified", [], [201], id="rdonly"),
        pytest.param(REPLICA, ["zone9"], "onlyspecified", [], [], id="no-tablet-in-cell"),
        pytest.param(
            REPLICA, ["zone2", "zone2"], "onlyspecified", [], [200, 202], id="duplicate-cells"
        ),
    ],
)
def test_candidates(
    tablet_type: topodata.TabletType,
    cells: list[str],
    preference: str,
    ignore: list[str],
    expected: list[int],
) -> None:
    got = candidates(
        make_topology(), "customer", "-80", tablet_type, cells, preference, "zone1",
        frozenset(ignore),
    )  # fmt: skip
    assert uids(got) == expected
    assert all(t.keyspace == "customer" and t.shard == "-80" for t in got)


def test_shuffle_stays_within_cells() -> None:
    topo = make_topology()
    topo.tablets.extend(TabletInfo("customer", "-80", "zone1", uid, REPLICA) for uid in range(1, 9))
    seen_first: set[int] = set()
    for seed in range(20):
        got = candidates(
            topo, "customer", "-80", REPLICA, ["zone2", "zone1"], "preferlocalwithalias",
            "zone1", frozenset(), rng=random.Random(seed),
        )  # fmt: skip
        assert [t.cell for t in got] == ["zone1"] * 10 + ["zone2"] * 2
        assert sorted(uids(got[:10])) == [1, 2, 3, 4, 5, 6, 7, 8, 101, 102]
        seen_first.add(got[0].uid)
    assert len(seen_first) > 1, "shuffling must spread streams over the local replicas"


def make_aliased_topology() -> Topology:
    """Replicas of customer/-80 in four cells, grouped in two aliases."""

    def t(cell: str, uid: int, tablet_type: topodata.TabletType = REPLICA) -> TabletInfo:
        return TabletInfo("customer", "-80", cell, uid, tablet_type)

    return Topology(
        cell="zone1",
        keyspaces={"customer": KeyspaceInfo("customer", ["-80"])},
        tablets=[
            t("zone4", 400),
            t("zone2", 200),
            t("zone1", 100, PRIMARY),
            t("zone1", 101),
            t("zone3", 300),
            t("zone1", 102),
            t("zone2", 202),
        ],
        cells_aliases={"region1": ["zone1", "zone2"], "region2": ["zone3", "zone4"]},
    )


@pytest.mark.parametrize(
    ("cells", "preference", "local", "expected"),
    [
        pytest.param(
            ["zone1"], "preferlocalwithalias", "zone1", [101, 102, 200, 202],
            id="alias-cells-count-as-local-unrequested",
        ),
        pytest.param(
            ["zone3"], "preferlocalwithalias", "zone1", [101, 102, 200, 202, 300],
            id="local-then-alias-then-requested",
        ),
        pytest.param(
            ["zone4", "zone2"], "preferlocalwithalias", "zone1", [101, 102, 200, 202, 400],
            id="requested-alias-cell-ranks-as-local",
        ),
        pytest.param(
            ["region2"], "preferlocalwithalias", "zone1", [101, 102, 200, 202, 300, 400],
            id="requested-alias-name-expands",
        ),
        pytest.param(
            ["zone1"], "preferlocalwithalias", "zone4", [400, 300, 101, 102],
            id="other-local-cell-uses-its-own-alias",
        ),
        pytest.param(
            ["nowhere"], "preferlocalwithalias", "zone1", [101, 102, 200, 202],
            id="unknown-name-finds-nothing",
        ),
        pytest.param(
            ["zone2"], "onlyspecified", "zone1", [200, 202], id="onlyspecified-no-widening"
        ),
        pytest.param(["region2"], "onlyspecified", "zone1", [300, 400], id="onlyspecified-alias"),
        pytest.param(
            ["zone3", "region1"], "onlyspecified", "zone1", [300, 101, 102, 200, 202],
            id="onlyspecified-alias-expands-in-place",
        ),
        pytest.param(
            ["region1", "zone1", "region1"], "onlyspecified", "zone1", [101, 102, 200, 202],
            id="onlyspecified-each-cell-once",
        ),
    ],
)  # fmt: skip
def test_candidates_with_cell_aliases(
    cells: list[str], preference: str, local: str, expected: list[int]
) -> None:
    got = candidates(
        make_aliased_topology(), "customer", "-80", REPLICA, cells, preference, local,
        frozenset(),
    )  # fmt: skip
    assert uids(got) == expected


def test_primary_ignores_cell_aliases() -> None:
    got = candidates(
        make_aliased_topology(), "customer", "-80", PRIMARY, ["region2"], "onlyspecified",
        "zone4", frozenset(),
    )  # fmt: skip
    assert uids(got) == [100]


def test_cell_tiers() -> None:
    aliases = {"region1": ["zone1", "zone2", "zone3"], "region2": ["zone8"]}
    tiers = cell_tiers(["zone9", "zone2", "region2"], "preferlocalwithalias", "zone1", aliases)
    assert tiers == [["zone1"], ["zone2", "zone3"], ["zone9"], ["zone8"]]
    # No aliases: the local cell, then the requested cells one by one.
    assert cell_tiers(["zone2", "zone1", "zone2"], "preferlocalwithalias", "zone1", {}) == [
        ["zone1"],
        ["zone2"],
    ]
    assert cell_tiers(["zone2", "region2"], "onlyspecified", "zone1", aliases) == [
        ["zone2"],
        ["zone8"],
    ]
    # Without a local cell there is nothing to prefer.
    assert cell_tiers(["zone2"], "preferlocalwithalias", "", aliases) == [["zone2"]]


def test_expand_cells() -> None:
    aliases = {"region1": ["zone1", "zone2"]}
    assert expand_cells(["zone2", "region1", "zone3"], aliases) == ["zone2", "zone1", "zone3"]
    assert expand_cells([], aliases) == []


def test_the_local_alias_is_shuffled_as_one_group() -> None:
    topo = make_aliased_topology()
    topo.cells_aliases = {"region1": ["zone1", "zone2", "zone3"]}
    second_cells: set[str] = set()
    for seed in range(30):
        got = candidates(
            topo, "customer", "-80", REPLICA, ["zone4"], "preferlocalwithalias", "zone1",
            frozenset(), rng=random.Random(seed),
        )  # fmt: skip
        assert [t.cell for t in got[:2]] == ["zone1", "zone1"]
        assert sorted(uids(got[2:5])) == [200, 202, 300]
        assert got[5].cell == "zone4"
        second_cells.add(got[2].cell)
    assert second_cells == {"zone2", "zone3"}, "every cell of the alias gets streams"


def report(
    tablet_type: topodata.TabletType = REPLICA,
    *,
    serving: bool = True,
    health_error: str = "",
    lag: int = 0,
    stats: bool = True,
    target: bool = True,
) -> query.StreamHealthResponse:
    return query.StreamHealthResponse(
        target=query.Target(keyspace="customer", shard="-80", tablet_type=tablet_type)
        if target
        else None,
        serving=serving,
        realtime_stats=query.RealtimeStats(health_error=health_error, replication_lag_seconds=lag)
        if stats
        else None,
    )


@pytest.mark.parametrize(
    ("resp", "wanted", "problem"),
    [
        pytest.param(report(), REPLICA, None, id="healthy"),
        pytest.param(report(lag=30), REPLICA, None, id="lag-at-limit"),
        pytest.param(
            report(lag=31), REPLICA, "has replication lag 31s, above the 30s limit", id="lagging"
        ),
        pytest.param(report(PRIMARY, lag=999), PRIMARY, None, id="primary-lag-ignored"),
        pytest.param(report(serving=False), REPLICA, "is not serving", id="not-serving"),
        pytest.param(
            report(health_error="mysqld down"),
            REPLICA,
            "is no longer healthy: mysqld down",
            id="health-error",
        ),
        pytest.param(
            report(PRIMARY),
            REPLICA,
            "changed tablet type from REPLICA to PRIMARY",
            id="type-changed",
        ),
        pytest.param(
            report(stats=False),
            REPLICA,
            "sent a health report without target or stats",
            id="no-stats",
        ),
        pytest.param(
            report(target=False),
            REPLICA,
            "sent a health report without target or stats",
            id="no-target",
        ),
    ],
)
def test_health_problem(
    resp: query.StreamHealthResponse, wanted: topodata.TabletType, problem: str | None
) -> None:
    assert health_problem(resp, wanted, 30.0) == problem


def test_type_name() -> None:
    assert type_name(REPLICA) == "REPLICA"
    assert type_name(99) == "99"


_cells = st.sampled_from(["zone1", "zone2", "zone3"])
_types = st.sampled_from([PRIMARY, REPLICA, RDONLY])
_tablets = st.lists(
    st.tuples(_cells, st.integers(1, 50), _types, st.sampled_from(["-80", "80-"])),
    max_size=12,
    unique_by=lambda t: (t[0], t[1]),
)


@settings(max_examples=150, deadline=None)
@given(
    tablets=_tablets,
    tablet_type=_types,
    cells=st.lists(st.sampled_from(["zone1", "zone2", "zone3", "region1"]), min_size=1, max_size=3),
    aliased=st.booleans(),
    preference=st.sampled_from(["preferlocalwithalias", "onlyspecified"]),
    ignore_uids=st.sets(st.integers(1, 50), max_size=5),
    seed=st.integers(0, 100),
)
def test_candidates_properties(
    tablets: list[tuple[str, int, topodata.TabletType, str]],
    tablet_type: topodata.TabletType,
    cells: list[str],
    aliased: bool,
    preference: str,
    ignore_uids: set[int],
    seed: int,
) -> None:
    aliases = {"region1": ["zone1", "zone2"]} if aliased else {}
    topo = Topology(
        cell="zone1",
        keyspaces={"customer": KeyspaceInfo("customer", ["-80", "80-"])},
        tablets=[TabletInfo("customer", shard, c, uid, tt) for c, uid, tt, shard in tablets],
        cells_aliases=aliases,
    )
    # What the request's cells stand for, in order: alias names become their cells.
    requested = list(dict.fromkeys(c for name in cells for c in aliases.get(name, [name])))
    local = ["zone1", *aliases.get("region1", [])] if preference == "preferlocalwithalias" else []
    ignore = frozenset(t.alias for t in topo.tablets if t.uid in ignore_uids)
    got = candidates(
        topo, "customer", "-80", tablet_type, cells, preference, "zone1", ignore,
        rng=random.Random(seed),
    )  # fmt: skip
    eligible = [
        t
        for t in topo.tablets
        if t.shard == "-80"
        and t.tablet_type == tablet_type
        and t.alias not in ignore
        and (tablet_type == PRIMARY or t.cell in requested or t.cell in local)
    ]
    # Exactly the eligible tablets, each once.
    assert sorted(got, key=lambda t: t.alias) == sorted(eligible, key=lambda t: t.alias)
    if tablet_type != PRIMARY:
        # The local cell, then the rest of its alias, then the requested cells in order.
        def rank(cell: str) -> int:
            if cell == "zone1" and local:
                return -2
            if cell in local:
                return -1
            return requested.index(cell)

        ranks = [rank(t.cell) for t in got]
        assert ranks == sorted(ranks), "cells appear as whole groups in preference order"
