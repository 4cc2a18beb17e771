"""Answers to ``/vtgateservice.Vitess/Execute`` metadata queries.

CDC clients ask a gateway a few questions before they stream (docs/vitess.md 11.1):
which keyspaces, which shards, which tables, which tablets. vsmux answers
those from its topology and a :class:`TableCatalog`; anything else gets an
``ExecuteResponse`` whose ``error`` is UNIMPLEMENTED "vsmux only answers
metadata queries: '<query>'" (a normal reply, not a gRPC failure; the query
quoted and cut, see :func:`vsmux.core.quoting.quote`). The
request's session is echoed back.

With an access file, the caller's :class:`~vsmux.core.access.Grant` decides
what the answers show: only the keyspaces (and of a table-limited keyspace,
the tables) it may stream, in ``SHOW DATABASES``, ``SHOW VITESS_SHARDS``,
``SHOW TABLES`` and ``SHOW VITESS_TABLETS``; ``SHOW TABLES FROM`` another
keyspace, or any query from a caller whose grant has ``metadata = false``,
gets PERMISSION_DENIED.

Where table names come from is the catalog's business: the simulated cluster
knows its schema; for real tablets the topology file may list them (see
``vsmux.server.tables``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from vsmux.core.access import FULL_ACCESS, Grant
from vsmux.core.limits import OPTIONS, utf8_length
from vsmux.core.quoting import quote
from vsmux.errors import Code, VStreamError
from vsmux.proto import query, topodata, vtgate, vtrpc
from vsmux.server.metadata_sql import (
    LikePattern,
    MetadataQuery,
    ShowDatabases,
    ShowShards,
    ShowTables,
    ShowTablets,
    parse_metadata_query,
    parse_target,
)
from vsmux.topology import AddressError, Topology, split_address

__all__ = ["TableCatalog", "answer_execute", "text_result"]

# utf8mb4_general_ci, what vtgate reports for its SHOW results.
_CHARSET_UTF8MB4 = 255

_TABLET_COLUMNS = [
    "Cell",
    "Keyspace",
    "Shard",
    "TabletType",
    "State",
    "Alias",
    "Hostname",
    "PrimaryTermStartTime",
]


class TableCatalog(Protocol):
    """Table names of a keyspace. Raises VStreamError when they cannot be had."""

    async def table_names(self, keyspace: str) -> list[str]: ...


def text_result(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> query.QueryResult:
    """A QueryResult of VARCHAR columns in the row encoding (lengths + values)."""
    fields = [
        query.Field(name=name, type=query.Type.VARCHAR, charset=_CHARSET_UTF8MB4)
        for name in columns
    ]
    encoded = []
    for row in rows:
        values = [value.encode() for value in row]
        encoded.append(query.Row(lengths=[len(v) for v in values], values=b"".join(values)))
    return query.QueryResult(fields=fields, rows=encoded)


def _keyspace_or_error(topology: Topology, keyspace: str) -> str:
    if keyspace not in topology.keyspaces:
        known = ", ".join(topology.keyspace_names()) or "none"
        raise VStreamError(
            Code.NOT_FOUND,
            f"keyspace {quote(keyspace)} not found in the topology (known keyspaces: {known})",
        )
    return keyspace


def _like(pattern: str, max_pattern_bytes: int) -> LikePattern:
    size = utf8_length(pattern)
    if size > max_pattern_bytes:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"LIKE pattern is {size} bytes long, over the limit of {max_pattern_bytes} bytes "
            f"(vsmux serve {OPTIONS['max_pattern_bytes']}): {quote(pattern, 64)}",
        )
    return LikePattern(pattern)


async def _answer(
    parsed: MetadataQuery,
    session: vtgate.Session,
    topology: Topology,
    catalog: TableCatalog,
    max_pattern_bytes: int,
    grant: Grant,
    user: str,
) -> query.QueryResult:
    keyspaces = grant.visible_keyspaces(topology.keyspace_names())
    if isinstance(parsed, ShowDatabases):
        return text_result(["Database"], [[name] for name in keyspaces])
    if isinstance(parsed, ShowShards):
        like = None if parsed.like is None else _like(parsed.like, max_pattern_bytes)
        names = [f"{ks}/{shard}" for ks in keyspaces for shard in topology.serving_shards(ks)]
        return text_result(["Shards"], [[n] for n in names if like is None or like.matches(n)])
    if isinstance(parsed, ShowTables):
        keyspace = parsed.keyspace
        if keyspace is None:
            target = parse_target(session.target_string)
            if target is None or not target.keyspace:
                raise VStreamError(
                    Code.FAILED_PRECONDITION,
                    "no keyspace selected: use SHOW TABLES FROM `keyspace` "
                    "or set the session target (ks:shard@type)",
                )
            keyspace = target.keyspace
        if not grant.may_read(keyspace):
            raise VStreamError(
                Code.PERMISSION_DENIED,
                f"user {quote(user, 64)} may not read keyspace {quote(keyspace, 64)}",
            )
        keyspace = _keyspace_or_error(topology, keyspace)
        tables = sorted(await catalog.table_names(keyspace))
        tables = [t for t in tables if grant.may_read_table(keyspace, t)]
        return text_result([f"Tables_in_{keyspace}"], [[t] for t in tables])
    assert isinstance(parsed, ShowTablets)
    rows = []
    for tablet in topology.tablets:
        if not grant.may_read(tablet.keyspace):
            continue
        host = _host_of(tablet.address)
        rows.append(
            [
                tablet.cell,
                tablet.keyspace,
                tablet.shard,
                topodata.TabletType(tablet.tablet_type).name or str(tablet.tablet_type),
                "SERVING",
                tablet.alias,
                host,
                "",
            ]
        )
    return text_result(_TABLET_COLUMNS, rows)


async def answer_execute(
    request: vtgate.ExecuteRequest,
    topology: Topology,
    catalog: TableCatalog,
    *,
    max_pattern_bytes: int = 256,
    grant: Grant = FULL_ACCESS,
    user: str = "",
) -> vtgate.ExecuteResponse:
    """The reply to one Execute call. Never raises VStreamError: it becomes ``error``.

    A ``LIKE`` pattern longer than ``max_pattern_bytes`` is refused. Errors
    quote the SQL cut to a few hundred bytes. ``grant`` is what ``user``
    may see. Cancellation propagates (only a catalog probe can wait).
    """
    session = request.session if request.session is not None else vtgate.Session()
    sql = request.query.sql if request.query is not None else ""
    if not grant.metadata:
        why = (
            "may not run metadata queries on this gateway"
            if grant.listed
            else "has no entry in the gateway's access file"
        )
        error = vtrpc.RpcError(
            code=vtrpc.Code.PERMISSION_DENIED, message=f"user {quote(user, 64)} {why}"
        )
        return vtgate.ExecuteResponse(error=error, session=session)
    parsed = parse_metadata_query(sql)
    if parsed is None:
        error = vtrpc.RpcError(
            code=vtrpc.Code.UNIMPLEMENTED,
            message=f"vsmux only answers metadata queries: {quote(sql.strip())}",
        )
        return vtgate.ExecuteResponse(error=error, session=session)
    try:
        result = await _answer(parsed, session, topology, catalog, max_pattern_bytes, grant, user)
    except VStreamError as exc:
        error = vtrpc.RpcError(code=exc.code, message=exc.message)
        return vtgate.ExecuteResponse(error=error, session=session)
    return vtgate.ExecuteResponse(session=session, result=result)


def _host_of(address: str | None) -> str:
    """The host part of a tablet's address, as SHOW VITESS_TABLETS lists it."""
    if address is None:
        return "in-process"
    try:
        return split_address(address)[0]
    except AddressError:  # not from the loader (built in code): show it whole
        return address
