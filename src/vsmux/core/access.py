"""Who may stream what: the access file's rules, applied to requests.

``vsmux serve --access-file FILE`` (with ``--grpc_auth_mode``) gives each
authenticated caller a :class:`Grant`: the keyspaces it may stream, for some
of them only certain tables, and whether its Execute metadata queries are
answered. The file is TOML::

    [users.debezium]                 # a static-auth username or an mTLS common name
    keyspaces = ["commerce", "customer"]   # "*": every keyspace
    metadata = true                  # SHOW ... over Execute (default true)

    [users.debezium.tables]          # optional: only these tables of commerce
    commerce = ["product", "orders"]

A caller with no entry may do nothing. Without an access file every
authenticated caller reads everything (:data:`FULL_ACCESS`).

Rules, decided before any tablet is asked (:func:`authorize_vstream`):

- a named keyspace the grant does not cover: PERMISSION_DENIED naming it,
  whether or not it exists (so its existence is not told);
- a lone ``""`` / ``/regex`` keyspace selector stands for the allowed
  keyspaces it matches only (the request is narrowed to them); none:
  PERMISSION_DENIED;
- on a keyspace limited to some tables, every filter rule must name one of
  them (a ``/regex`` rule, or no filter, which means ``/.*``, could match
  others, and one filter serves every keyspace of the request); rules whose
  filter is ``exclude`` only take tables away and always pass.

Pure: no I/O but the caller's file text, no Trio.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vsmux.core.quoting import quote
from vsmux.core.resolve import expand_keyspace_selector
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, vtgate
from vsmux.topology import Topology

__all__ = [
    "FULL_ACCESS",
    "AccessFileError",
    "AccessPolicy",
    "Grant",
    "authorize_vstream",
    "parse_access_file",
]

_EVERY_KEYSPACE = "*"
_EXCLUDE = "exclude"


class AccessFileError(ValueError):
    """The access file cannot be used; the message names the user and key."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one caller may read.

    ``keyspaces`` None means every keyspace. ``tables`` limits some keyspaces
    to the named tables (a keyspace absent from it: every table).
    ``metadata``: Execute's metadata queries are answered. ``listed`` is
    False for a caller the access file does not name (it may do nothing).
    """

    keyspaces: frozenset[str] | None = None
    tables: Mapping[str, frozenset[str]] = field(default_factory=dict)
    metadata: bool = True
    listed: bool = True

    def may_read(self, keyspace: str) -> bool:
        return self.keyspaces is None or keyspace in self.keyspaces

    def may_read_table(self, keyspace: str, table: str) -> bool:
        if not self.may_read(keyspace):
            return False
        tables = self.tables.get(keyspace)
        return tables is None or table in tables

    def visible_keyspaces(self, names: Iterable[str]) -> list[str]:
        """``names`` this grant may read, in their order."""
        return [name for name in names if self.may_read(name)]


#: Everyone's grant when there is no access file.
FULL_ACCESS = Grant()
_NOTHING = Grant(keyspaces=frozenset(), metadata=False, listed=False)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The access file: a grant per caller name."""

    grants: Mapping[str, Grant]

    def grant_for(self, name: str) -> Grant:
        """``name``'s grant; a caller the file does not name gets nothing."""
        return self.grants.get(name, _NOTHING)


def parse_access_file(text: str) -> AccessPolicy:
    """The access policy in a TOML access file's text (see the module's docstring)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AccessFileError(f"not TOML: {exc}") from None
    unknown = sorted(set(data) - {"users"})
    if unknown:
        raise AccessFileError(f"unknown top-level key {unknown[0]!r}; expected [users.NAME]")
    users = data.get("users", {})
    if not isinstance(users, dict) or not users:
        raise AccessFileError("no [users.NAME] entries: no one could read anything")
    return AccessPolicy({str(name): _grant(str(name), entry) for name, entry in users.items()})


def _grant(name: str, entry: Any) -> Grant:
    where = f"[users.{name}]"
    if not isinstance(entry, dict):
        raise AccessFileError(f"{where} must be a table")
    unknown = sorted(set(entry) - {"keyspaces", "tables", "metadata"})
    if unknown:
        raise AccessFileError(
            f"{where}: unknown key {unknown[0]!r}; expected keyspaces, tables, metadata"
        )
    keyspaces = _names(entry.get("keyspaces", []), f"{where} keyspaces")
    every = _EVERY_KEYSPACE in keyspaces
    tables_entry = entry.get("tables", {})
    if not isinstance(tables_entry, dict):
        raise AccessFileError(f"{where}: tables must be a table of keyspace = [table names]")
    tables: dict[str, frozenset[str]] = {}
    for keyspace, names in tables_entry.items():
        if not every and keyspace not in keyspaces:
            raise AccessFileError(
                f"{where}: tables names keyspace {keyspace!r}, which is not in its keyspaces"
            )
        tables[keyspace] = frozenset(_names(names, f"{where} tables.{keyspace}"))
    metadata = entry.get("metadata", True)
    if not isinstance(metadata, bool):
        raise AccessFileError(f"{where}: metadata must be true or false")
    return Grant(
        keyspaces=None if every else frozenset(keyspaces),
        tables=tables,
        metadata=metadata,
    )


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AccessFileError(f"{where} must be a list of non-empty names")
    return list(value)


def authorize_vstream(
    request: vtgate.VStreamRequest, topology: Topology, user: str, grant: Grant
) -> vtgate.VStreamRequest:
    """``request`` if ``grant`` covers it, narrowed to allowed keyspaces; else PERMISSION_DENIED.

    The request is not modified: a narrowed one is a copy. A request the
    resolver would refuse anyway (no vgtid) is passed on for it to refuse.
    """
    if grant is FULL_ACCESS:
        return request
    who = quote(user, 64)
    if not grant.listed:
        raise VStreamError(
            Code.PERMISSION_DENIED,
            f"user {who} has no entry in the gateway's access file: it may stream nothing",
        )
    vgtid = request.vgtid
    if vgtid is None or not vgtid.shard_gtids:
        return request
    narrowed = expand_keyspace_selector(vgtid, topology, grant.may_read)
    if narrowed is not None:
        if not narrowed:
            raise VStreamError(
                Code.PERMISSION_DENIED,
                f"user {who} may stream no keyspace selected by "
                f"{quote(vgtid.shard_gtids[0].keyspace, 64)}",
            )
        keyspaces = [entry.keyspace for entry in narrowed]
    else:
        keyspaces = [entry.keyspace for entry in vgtid.shard_gtids]
        for keyspace in keyspaces:
            if not grant.may_read(keyspace):
                raise VStreamError(
                    Code.PERMISSION_DENIED,
                    f"user {who} may not stream keyspace {quote(keyspace, 64)}",
                )
            if keyspace not in topology.keyspaces:
                # Answered here, not by the resolver, whose message lists every
                # keyspace: a restricted user learns only the ones it may read.
                visible = grant.visible_keyspaces(topology.keyspace_names())
                raise VStreamError(
                    Code.NOT_FOUND,
                    f"keyspace {quote(keyspace, 64)} not found in the topology; keyspaces "
                    f"user {who} may stream: {', '.join(visible) or 'none'}",
                )
    _check_filter(request.filter, keyspaces, who, grant)
    if narrowed is None:
        return request
    out = copy.copy(request)
    out.vgtid = binlogdata.VGtid(shard_gtids=narrowed)
    return out


def _check_filter(
    filter_: binlogdata.Filter | None, keyspaces: list[str], who: str, grant: Grant
) -> None:
    limited = [(ks, grant.tables[ks]) for ks in dict.fromkeys(keyspaces) if ks in grant.tables]
    if not limited:
        return
    rules = filter_.rules if filter_ is not None else [binlogdata.Rule(match="/.*")]
    for rule in rules:
        if rule.filter == _EXCLUDE:
            continue
        for keyspace, tables in limited:
            if rule.match.startswith("/"):
                raise VStreamError(
                    Code.PERMISSION_DENIED,
                    f"user {who} may stream only some tables of keyspace {quote(keyspace, 64)}"
                    f" ({', '.join(sorted(tables))}); the filter rule {quote(rule.match, 64)} "
                    "could match others: name each table in its own rule",
                )
            if rule.match not in tables:
                raise VStreamError(
                    Code.PERMISSION_DENIED,
                    f"user {who} may not stream table {quote(rule.match, 64)} "
                    f"of keyspace {quote(keyspace, 64)}",
                )
