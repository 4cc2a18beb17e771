"""Execute answers from the topology and the table catalog."""

from __future__ import annotations

from vsmux.proto import query, topodata, vtgate, vtrpc
from vsmux.server.execute import answer_execute
from vsmux.server.tables import StaticTableCatalog
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology


def _topology() -> Topology:
    tablets = [
        TabletInfo("commerce", "-80", "zone1", 100, topodata.TabletType.PRIMARY),
        TabletInfo("commerce", "80-", "zone1", 200, topodata.TabletType.PRIMARY, "10.0.0.2:15999"),
        TabletInfo("customer", "0", "zone1", 300, topodata.TabletType.REPLICA),
    ]
    return Topology(
        cell="zone1",
        keyspaces={
            "commerce": KeyspaceInfo("commerce", ["-80", "80-"]),
            "customer": KeyspaceInfo("customer", ["0"]),
        },
        tablets=tablets,
    )


CATALOG = StaticTableCatalog({"commerce": ["product", "customer", "corder"]})


def _values(result: query.QueryResult) -> list[list[str]]:
    out = []
    for row in result.rows:
        pos = 0
        values = []
        for length in row.lengths:
            values.append(row.values[pos : pos + length].decode())
            pos += length
        out.append(values)
    return out


async def _ask(sql: str, target: str = "") -> vtgate.ExecuteResponse:
    request = vtgate.ExecuteRequest(
        session=vtgate.Session(target_string=target, autocommit=True),
        query=query.BoundQuery(sql=sql),
    )
    response = await answer_execute(request, _topology(), CATALOG)
    assert response.session is not None
    assert response.session.target_string == target  # echoed
    assert response.session.autocommit
    return response


async def test_show_databases() -> None:
    response = await _ask("/*vt+ WORKLOAD_NAME=debezium */ SHOW DATABASES")
    assert response.error is None
    assert response.result is not None
    assert [f.name for f in response.result.fields] == ["Database"]
    assert response.result.fields[0].type == query.Type.VARCHAR
    assert _values(response.result) == [["commerce"], ["customer"]]


async def test_show_shards_like() -> None:
    response = await _ask("SHOW VITESS_SHARDS LIKE 'commerce/%'")
    assert response.result is not None
    assert _values(response.result) == [["commerce/-80"], ["commerce/80-"]]
    everything = await _ask("SHOW VITESS_SHARDS;")
    assert everything.result is not None
    assert len(everything.result.rows) == 3


async def test_show_tables_from_keyspace_and_from_target() -> None:
    response = await _ask("SHOW TABLES FROM `commerce`")
    assert response.result is not None
    assert [f.name for f in response.result.fields] == ["Tables_in_commerce"]
    assert _values(response.result) == [["corder"], ["customer"], ["product"]]
    by_target = await _ask("SHOW TABLES", target="commerce:-80@primary")
    assert by_target.result is not None
    assert _values(by_target.result) == _values(response.result)


async def test_show_tables_errors_name_the_problem() -> None:
    unknown = await _ask("SHOW TABLES FROM nope")
    assert unknown.error is not None
    assert unknown.error.code == vtrpc.Code.NOT_FOUND
    assert "'nope'" in unknown.error.message and "commerce" in unknown.error.message
    no_target = await _ask("SHOW TABLES")
    assert no_target.error is not None
    assert no_target.error.code == vtrpc.Code.FAILED_PRECONDITION
    no_list = await _ask("SHOW TABLES FROM customer")
    assert no_list.error is not None
    assert no_list.error.code == vtrpc.Code.FAILED_PRECONDITION
    assert "tables = [...]" in no_list.error.message


async def test_show_tablets() -> None:
    response = await _ask("show vitess_tablets")
    assert response.result is not None
    rows = _values(response.result)
    assert rows[0] == [
        "zone1",
        "commerce",
        "-80",
        "PRIMARY",
        "SERVING",
        "zone1-0000000100",
        "in-process",
        "",
    ]
    assert rows[1][6] == "10.0.0.2"
    assert rows[2][3] == "REPLICA"


async def test_other_queries_are_unimplemented_not_failures() -> None:
    response = await _ask("SELECT * FROM customer")
    assert response.result is None
    assert response.error is not None
    assert response.error.code == vtrpc.Code.UNIMPLEMENTED
    assert response.error.message == "vsmux only answers metadata queries: 'SELECT * FROM customer'"


async def test_a_huge_query_is_quoted_cut_in_the_error() -> None:
    response = await _ask("SELECT " + "x" * 3_000_000)
    assert response.error is not None
    message = response.error.message
    assert message.startswith("vsmux only answers metadata queries: 'SELECT xxx")
    assert message.endswith("'... (3000007 characters)")
    assert len(message) < 300


async def test_unknown_keyspace_is_quoted_and_cut() -> None:
    response = await _ask("SHOW TABLES FROM `" + "k\n" * 10_000 + "`")
    assert response.error is not None
    assert response.error.code == vtrpc.Code.NOT_FOUND
    assert "\n" not in response.error.message
    assert len(response.error.message) < 600


async def test_a_like_pattern_over_the_limit_is_refused() -> None:
    pattern = "%" * 300
    response = await _ask(f"SHOW VITESS_SHARDS LIKE '{pattern}'")
    assert response.error is not None
    assert response.error.code == vtrpc.Code.INVALID_ARGUMENT
    assert response.error.message.startswith(
        "LIKE pattern is 300 bytes long, over the limit of 256 bytes "
        "(vsmux serve --max-pattern-bytes): '%%%"
    )
    request = vtgate.ExecuteRequest(
        query=query.BoundQuery(sql=f"SHOW VITESS_SHARDS LIKE '{pattern}'")
    )
    roomy = await answer_execute(request, _topology(), CATALOG, max_pattern_bytes=1000)
    assert roomy.error is None and roomy.result is not None
    assert len(roomy.result.rows) == 3
