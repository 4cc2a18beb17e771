"""Request resolution (docs/vitess.md section 1)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsmux.core.resolve import ResolvedRequest, expand_keyspace_selector, resolve_request
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, topodata, vtgate, vtrpc
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology

PRIMARY = topodata.TabletType.PRIMARY
REPLICA = topodata.TabletType.REPLICA
POS = "MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23"


def make_topology() -> Topology:
    topo = Topology(
        cell="zone1",
        keyspaces={
            "customer": KeyspaceInfo("customer", ["-80", "80-"]),
            "commerce": KeyspaceInfo("commerce", ["0"]),
            "lookup": KeyspaceInfo("lookup", ["-40", "40-80", "80-"]),
        },
    )
    uid = 100
    for ks in topo.keyspaces.values():
        for shard in ks.shards:
            topo.tablets.append(TabletInfo(ks.name, shard, "zone1", uid, PRIMARY))
            uid += 1
    # customer/0 was the shard before the split into -80 and 80-: not serving, but
    # its tablets are still around, so a VGtid from before the reshard resolves.
    topo.tablets.append(TabletInfo("customer", "0", "zone1", 900, PRIMARY))
    return topo


def sg(keyspace: str, shard: str = "", gtid: str = "current") -> binlogdata.ShardGtid:
    return binlogdata.ShardGtid(keyspace=keyspace, shard=shard, gtid=gtid)


def req(
    *entries: binlogdata.ShardGtid,
    tablet_type: topodata.TabletType = topodata.TabletType.UNKNOWN,
    flags: vtgate.VStreamFlags | None = None,
    filter: binlogdata.Filter | None = None,
) -> vtgate.VStreamRequest:
    return vtgate.VStreamRequest(
        tablet_type=tablet_type,
        vgtid=binlogdata.VGtid(shard_gtids=list(entries)),
        flags=flags,
        filter=filter,
    )


def resolve(request: vtgate.VStreamRequest) -> ResolvedRequest:
    return resolve_request(request, make_topology(), "zone1")


def shards_of(resolved: ResolvedRequest) -> list[tuple[str, str, str]]:
    return [(s.keyspace, s.shard, s.gtid) for s in resolved.shard_gtids]


# -- expansions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param(
            [sg("", "", "current")],
            [
                ("commerce", "0", "current"),
                ("customer", "-80", "current"),
                ("customer", "80-", "current"),
                ("lookup", "-40", "current"),
                ("lookup", "40-80", "current"),
                ("lookup", "80-", "current"),
            ],
            id="empty-keyspace-current-means-every-keyspace",
        ),
        pytest.param(
            [sg("customer", "", "current")],
            [("customer", "-80", "current"), ("customer", "80-", "current")],
            id="empty-shard-current",
        ),
        pytest.param(
            [sg("customer", "", "")],
            [("customer", "-80", ""), ("customer", "80-", "")],
            id="empty-shard-copy",
        ),
        pytest.param(
            [sg("customer", "80-", POS), sg("commerce", "0", "")],
            [("customer", "80-", POS), ("commerce", "0", "")],
            id="explicit-shards-kept-in-order",
        ),
        pytest.param(
            [sg("/c.*", "", "current")],
            [
                ("commerce", "0", "current"),
                ("customer", "-80", "current"),
                ("customer", "80-", "current"),
            ],
            id="regex-keyspaces-sorted",
        ),
        pytest.param(
            [sg("/ook", "", "")],
            [("lookup", "-40", ""), ("lookup", "40-80", ""), ("lookup", "80-", "")],
            id="regex-is-an-unanchored-search",
        ),
        pytest.param(
            [sg("/^cu", "80-", POS)],
            [("customer", "80-", POS)],
            id="regex-with-shard",
        ),
        pytest.param(
            [sg("customer", "0", POS)],
            [("customer", "0", POS)],
            id="non-serving-shard-with-tablets-is-known",
        ),
        pytest.param(
            [sg("lookup", "-40", "MariaDB/0-1-123"), sg("lookup", "80-", "FilePos/bin.000001:4")],
            [("lookup", "-40", "MariaDB/0-1-123"), ("lookup", "80-", "FilePos/bin.000001:4")],
            id="other-position-flavors",
        ),
        pytest.param(
            [sg("commerce", "0", "MySQL56/")],
            [("commerce", "0", "MySQL56/")],
            id="empty-gtid-set-is-a-position",
        ),
    ],
)
def test_expansion(
    entries: list[binlogdata.ShardGtid], expected: list[tuple[str, str, str]]
) -> None:
    assert shards_of(resolve(req(*entries))) == expected


# -- errors -----------------------------------------------------------------------------

PREFIX = "failed to resolve vstream parameters: "


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        pytest.param(
            vtgate.VStreamRequest(),
            Code.INVALID_ARGUMENT,
            "vgtid must have at least one value with a starting position in ShardGtids",
            id="no-vgtid",
        ),
        pytest.param(
            req(),
            Code.INVALID_ARGUMENT,
            "vgtid must have at least one value with a starting position in ShardGtids",
            id="no-shard-gtids",
        ),
        pytest.param(
            req(sg("", "", "")),
            Code.INVALID_ARGUMENT,
            "for an empty keyspace, the Gtid value must be 'current': "
            'shard_gtids:[{keyspace:"" shard:"" gtid:""}]',
            id="empty-keyspace-needs-current",
        ),
        pytest.param(
            req(sg("", "-80", "current")),
            Code.INVALID_ARGUMENT,
            "shard '-80' is given without a keyspace",
            id="empty-keyspace-with-shard",
        ),
        pytest.param(
            req(sg("customer", "", POS)),
            Code.INVALID_ARGUMENT,
            "if shards are unspecified, the Gtid value must be 'current' or empty; "
            f"got: {POS} (keyspace customer)",
            id="empty-shard-needs-current-or-empty",
        ),
        pytest.param(
            req(sg("/c(", "", "current")),
            Code.INVALID_ARGUMENT,
            "failed to compile regexp using /c(: missing ), unterminated subpattern",
            id="bad-regex",
        ),
        pytest.param(
            req(sg("/^zzz", "", "current")),
            Code.NOT_FOUND,
            "no keyspace matches /^zzz; known keyspaces: commerce, customer, lookup",
            id="regex-matches-nothing",
        ),
        pytest.param(
            req(sg("nope", "0", "current")),
            Code.NOT_FOUND,
            "keyspace nope not found in the topology; known keyspaces: commerce, customer, lookup",
            id="unknown-keyspace",
        ),
        pytest.param(
            req(sg("customer", "-40", "current")),
            Code.NOT_FOUND,
            "shard customer/-40 not found in the topology; serving shards of customer: -80, 80-",
            id="unknown-shard",
        ),
        pytest.param(
            req(sg("customer", "-80"), sg("customer", "-80", POS)),
            Code.INVALID_ARGUMENT,
            "shard customer/-80 appears more than once in ShardGtids",
            id="duplicate-shard",
        ),
        pytest.param(
            req(sg("customer", ""), sg("customer", "80-", POS)),
            Code.INVALID_ARGUMENT,
            "shard customer/80- appears more than once in ShardGtids",
            id="duplicate-after-expansion",
        ),
        pytest.param(
            req(sg("customer", "-80", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23")),
            Code.INVALID_ARGUMENT,
            "gtid '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23' for customer/-80 is not a valid "
            "position",
            id="position-without-flavor",
        ),
        pytest.param(
            req(sg("customer", "-80", "mysql/abc:1")),
            Code.INVALID_ARGUMENT,
            "gtid 'mysql/abc:1' for customer/-80 is not a valid position",
            id="position-with-unknown-flavor",
        ),
        pytest.param(
            req(sg("customer"), sg("", "", "current")),
            Code.INVALID_ARGUMENT,
            "keyspace '' selects several keyspaces, which is only allowed as the only entry",
            id="empty-keyspace-among-others",
        ),
        pytest.param(
            req(sg("commerce", "0"), sg("/cust", "", "current")),
            Code.INVALID_ARGUMENT,
            "keyspace '/cust' selects several keyspaces",
            id="regex-among-others",
        ),
        pytest.param(
            req(sg("commerce", "0"), flags=vtgate.VStreamFlags(cell_preference="nearest")),
            Code.INVALID_ARGUMENT,
            "invalid cell preference 'nearest': use preferlocalwithalias or onlyspecified",
            id="bad-cell-preference",
        ),
        pytest.param(
            req(sg("commerce", "0"), tablet_type=topodata.TabletType.BACKUP),
            Code.INVALID_ARGUMENT,
            "tablet type BACKUP cannot serve a vstream; use PRIMARY, REPLICA or RDONLY",
            id="unstreamable-tablet-type",
        ),
    ],
)
def test_errors(request_: vtgate.VStreamRequest, code: Code, message: str) -> None:
    with pytest.raises(VStreamError) as info:
        resolve(request_)
    assert info.value.code == code
    assert info.value.message.startswith(PREFIX + message), info.value.message


def test_keyspace_without_serving_shards() -> None:
    topo = make_topology()
    topo.keyspaces["empty"] = KeyspaceInfo("empty", [])
    with pytest.raises(VStreamError) as info:
        resolve_request(req(sg("empty", "", "current")), topo, "zone1")
    assert info.value.code == Code.FAILED_PRECONDITION
    assert info.value.message == (PREFIX + "keyspace empty has no serving shards to stream from")


def test_empty_topology() -> None:
    with pytest.raises(VStreamError) as info:
        resolve_request(req(sg("", "", "current")), Topology(cell="zone1"), "zone1")
    assert info.value.code == Code.FAILED_PRECONDITION
    assert info.value.message == PREFIX + "the topology has no keyspaces to stream from"


# -- /regex keyspaces: RE2, as Vitess's Go regexp -------------------------------------


def test_regex_with_nested_quantifiers_runs_in_linear_time() -> None:
    # Python's backtracking re needs ~2**60 steps per near-miss name; RE2 one pass.
    near_misses = [f"{'a' * 60}{i:03d}-" for i in range(200)]
    keyspaces = {name: KeyspaceInfo(name, ["0"]) for name in [*near_misses, "a" * 64]}
    topo = Topology(cell="zone1", keyspaces=keyspaces)
    for uid, name in enumerate(keyspaces):
        topo.tablets.append(TabletInfo(name, "0", "zone1", uid, PRIMARY))
    resolved = resolve_request(req(sg("/^(a+)+$", "", "current")), topo, "zone1")
    assert shards_of(resolved) == [("a" * 64, "0", "current")]


def test_regex_takes_go_syntax() -> None:
    # \z (end of text) is Go and RE2 syntax that Python's re (before 3.14) lacks.
    resolved = resolve(req(sg(r"/merce\z", "", "current")))
    assert shards_of(resolved) == [("commerce", "0", "current")]


@pytest.mark.parametrize(
    ("selector", "detail"),
    [
        pytest.param(r"/(c)\1", r"invalid escape sequence: \1", id="backreference"),
        pytest.param("/c(?=o)", "invalid perl operator: (?=", id="lookahead"),
        pytest.param("/(?<!x)c", "invalid perl operator: (?<!", id="lookbehind"),
    ],
)
def test_regex_backtracking_constructs_are_refused(selector: str, detail: str) -> None:
    with pytest.raises(VStreamError) as info:
        resolve(req(sg(selector, "", "current")))
    assert info.value.code == Code.INVALID_ARGUMENT
    message = info.value.message
    assert message.startswith(PREFIX + "failed to compile regexp using "), message
    assert detail in message
    assert message.endswith("(keyspace patterns are RE2, like the Go regexp Vitess uses)")


# -- defaults ---------------------------------------------------------------------------


def test_defaults() -> None:
    resolved = resolve(req(sg("commerce", "0")))
    assert resolved.tablet_type == PRIMARY
    assert resolved.filter == binlogdata.Filter(rules=[binlogdata.Rule(match="/.*")])
    assert resolved.flags == vtgate.VStreamFlags()
    assert resolved.cells == ["zone1"]
    assert resolved.cell_preference == "preferlocalwithalias"
    assert resolved.caller_id is None


def test_caller_id_is_kept_as_a_copy() -> None:
    request = req(sg("commerce", "0"))
    request.caller_id = vtrpc.CallerId(principal="debezium", component="cdc", groups=["etl"])
    resolved = resolve(request)
    assert resolved.caller_id == vtrpc.CallerId(
        principal="debezium", component="cdc", groups=["etl"]
    )
    assert resolved.caller_id is not request.caller_id


def test_explicit_values_are_kept() -> None:
    flags = vtgate.VStreamFlags(
        minimize_skew=True,
        heartbeat_interval=5,
        cells=" zone2 , zone3,, ",
        cell_preference="OnlySpecified",
    )
    filter_ = binlogdata.Filter(rules=[binlogdata.Rule(match="t1", filter="select * from t1")])
    resolved = resolve(req(sg("commerce", "0"), tablet_type=REPLICA, flags=flags, filter=filter_))
    assert resolved.tablet_type == REPLICA
    assert resolved.filter == filter_
    assert resolved.flags == flags
    assert resolved.cells == ["zone2", "zone3"]
    assert resolved.cell_preference == "onlyspecified"


def test_blank_cells_flag_means_gateway_cell() -> None:
    resolved = resolve_request(
        req(sg("commerce", "0"), flags=vtgate.VStreamFlags(cells=" , ")), make_topology(), "zoneX"
    )
    assert resolved.cells == ["zoneX"]


def test_request_is_not_mutated_and_result_is_a_copy() -> None:
    lastpk = binlogdata.TableLastPk(table_name="customer")
    request = req(
        binlogdata.ShardGtid(keyspace="customer", shard="-80", gtid=POS, table_p_ks=[lastpk]),
        sg("commerce"),
        flags=vtgate.VStreamFlags(cells="zone1"),
        filter=binlogdata.Filter(rules=[binlogdata.Rule(match="customer")]),
    )
    before = copy.deepcopy(request)
    resolved = resolve(request)
    assert request == before
    assert resolved.shard_gtids[0].table_p_ks == [lastpk]
    resolved.shard_gtids[0].table_p_ks.clear()
    resolved.shard_gtids[0].gtid = "changed"
    resolved.filter.rules.clear()
    resolved.flags.cells = "changed"
    assert request == before


# -- properties -------------------------------------------------------------------------

_names = st.sampled_from(["", "customer", "commerce", "lookup", "nope", "/c", "/(", "/.*"])
_shards = st.sampled_from(["", "0", "-80", "80-", "-40", "40-80", "x"])
_gtids = st.sampled_from(["", "current", POS, "MariaDB/0-1-2", "junk", "FilePos/"])
_entries = st.builds(sg, _names, _shards, _gtids)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(_entries, max_size=4),
    tablet_type=st.sampled_from(list(topodata.TabletType)),
    cell_preference=st.sampled_from(["", "onlyspecified", "PreferLocalWithAlias", "bogus"]),
)
def test_resolution_only_raises_vstream_errors(
    entries: list[binlogdata.ShardGtid],
    tablet_type: topodata.TabletType,
    cell_preference: str,
) -> None:
    topo = make_topology()
    request = req(
        *entries,
        tablet_type=tablet_type,
        flags=vtgate.VStreamFlags(cell_preference=cell_preference),
    )
    try:
        resolved = resolve_request(request, topo, "zone1")
    except VStreamError as err:
        assert err.message.startswith(PREFIX)
        assert err.code in (Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.FAILED_PRECONDITION)
        return
    keys = [(s.keyspace, s.shard) for s in resolved.shard_gtids]
    assert keys, "a resolved request streams at least one shard"
    assert len(set(keys)) == len(keys)
    for keyspace, shard in keys:
        assert shard in topo.keyspaces[keyspace].shards or topo.has_shard(keyspace, shard)
    assert resolved.tablet_type != topodata.TabletType.UNKNOWN
    assert resolved.cell_preference in ("preferlocalwithalias", "onlyspecified")


@settings(max_examples=100, deadline=None)
@given(
    shards=st.lists(
        st.sampled_from(["-40", "40-80", "80-c0", "c0-", "-80", "80-", "0"]),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    gtid=st.sampled_from(["current", ""]),
)
def test_expansion_yields_exactly_the_serving_shards(shards: list[str], gtid: str) -> None:
    topo = Topology(cell="zone1", keyspaces={"ks": KeyspaceInfo("ks", shards)})
    # Tablets of a shard that does not serve must not be picked up by expansion.
    topo.tablets.append(TabletInfo("ks", "old", "zone1", 1, PRIMARY))
    resolved = resolve_request(req(sg("ks", "", gtid)), topo, "zone1")
    assert shards_of(resolved) == [("ks", shard, gtid) for shard in shards]


def test_selector_expands_to_allowed_keyspaces_as_resolve_would() -> None:
    topo = make_topology()

    def allowed(name: str) -> bool:
        return name != "lookup"

    vgtid = binlogdata.VGtid(shard_gtids=[sg("/u", shard="80-", gtid=POS)])
    expanded = expand_keyspace_selector(vgtid, topo, allowed)
    assert expanded == [sg("customer", shard="80-", gtid=POS)]
    narrowed = resolve_request(vtgate.VStreamRequest(vgtid=binlogdata.VGtid(expanded)), topo, "z")
    whole = resolve_request(vtgate.VStreamRequest(vgtid=vgtid), topo, "z")
    assert [s for s in whole.shard_gtids if s.keyspace == "customer"] == narrowed.shard_gtids
    every = expand_keyspace_selector(binlogdata.VGtid(shard_gtids=[sg("")]), topo, allowed)
    assert every is not None and [s.keyspace for s in every] == ["commerce", "customer"]
    assert expand_keyspace_selector(binlogdata.VGtid(shard_gtids=[sg("/^l")]), topo, allowed) == []
    assert (
        expand_keyspace_selector(binlogdata.VGtid(shard_gtids=[sg("lookup")]), topo, allowed)
        is None
    )
    with pytest.raises(VStreamError) as info:
        expand_keyspace_selector(binlogdata.VGtid(shard_gtids=[sg("/(")]), topo, allowed)
    assert info.value.message.startswith("failed to resolve vstream parameters: ")
