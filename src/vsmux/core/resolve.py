"""Request resolution: a client's VStreamRequest -> concrete shard positions.

``resolve_request`` applies the defaults and expansions of ``docs/vitess.md``
§1 and checks everything that can be checked before a tablet is asked:

- ``tablet_type`` UNKNOWN means PRIMARY; an absent filter means every table
  (``/.*``); absent flags mean all defaults.
- One ShardGtid with keyspace ``""`` and gtid ``current``: every keyspace.
- One ShardGtid whose keyspace starts with ``/``: every keyspace matching the
  regular expression after the slash (unanchored search), in name order. The
  expression is RE2, as Go's regexp that Vitess uses: matching takes time
  linear in the name, whatever the pattern, and backreferences and
  lookarounds are refused as Vitess refuses them.
- Shard ``""`` with gtid ``current`` or ``""``: the keyspace's serving shards.
- Unknown keyspaces and shards, duplicate shards, malformed positions and bad
  cell preferences are rejected with an error naming the culprit.

Every error is a :class:`VStreamError` whose message starts with
"failed to resolve vstream parameters: ". The request is never modified: the
result holds copies.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vsmux.core.patterns import PatternError, compile_pattern
from vsmux.core.quoting import mention, quote
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, topodata, vtgate, vtrpc
from vsmux.topology import Topology

__all__ = [
    "CELL_PREFERENCES",
    "POSITION_FLAVORS",
    "ResolvedRequest",
    "expand_keyspace_selector",
    "resolve_request",
]

# Position flavors a vttablet can decode ("MySQL56/<gtid set>", "MariaDB/0-1-2",
# "FilePos/<file>:<pos>"). The rest of the position is left to the tablet to parse.
POSITION_FLAVORS = frozenset({"MySQL56", "MariaDB", "FilePos"})

CELL_PREFERENCES = ("preferlocalwithalias", "onlyspecified")

# Tablet types that run a binlog streamer a gateway may read from.
_STREAMABLE_TYPES = (
    topodata.TabletType.PRIMARY,
    topodata.TabletType.REPLICA,
    topodata.TabletType.RDONLY,
)

_CURRENT = "current"
_PREFIX = "failed to resolve vstream parameters"


@dataclass(frozen=True, slots=True)
class ResolvedRequest:
    """A client's request with every default applied and every wildcard expanded.

    :func:`resolve_request` returns it and the session reads it from then on,
    never the client's message: streamers take the tablet type, filter, flags
    and caller id into their tablet requests, the tablet picker the cells and
    cell preference, and the position book starts from ``shard_gtids``.
    Every field is a copy, so the client's message is never modified.
    """

    tablet_type: topodata.TabletType  # never UNKNOWN: UNKNOWN resolves to PRIMARY
    shard_gtids: list[binlogdata.ShardGtid]  # each with a concrete keyspace and shard
    filter: binlogdata.Filter
    flags: vtgate.VStreamFlags
    cells: list[str]  # from flags.cells, or [gateway cell]
    cell_preference: str  # "preferlocalwithalias" | "onlyspecified"
    # The client's identity, passed on to tablets as their effective caller id.
    caller_id: vtrpc.CallerId | None = None


def resolve_request(
    request: vtgate.VStreamRequest, topology: Topology, gateway_cell: str
) -> ResolvedRequest:
    """Resolve ``request`` against ``topology``; raise a wrapped VStreamError if it is bad."""
    try:
        return _resolve(request, topology, gateway_cell)
    except VStreamError as err:
        raise err.wrap(_PREFIX) from None


def _resolve(
    request: vtgate.VStreamRequest, topology: Topology, gateway_cell: str
) -> ResolvedRequest:
    flags = copy.deepcopy(request.flags) if request.flags is not None else vtgate.VStreamFlags()
    if request.filter is not None:
        filter_ = copy.deepcopy(request.filter)
    else:
        filter_ = binlogdata.Filter(rules=[binlogdata.Rule(match="/.*")])
    return ResolvedRequest(
        tablet_type=_tablet_type(request.tablet_type),
        shard_gtids=_shard_gtids(request.vgtid, topology),
        filter=filter_,
        flags=flags,
        cells=_cells(flags.cells, gateway_cell),
        cell_preference=_cell_preference(flags.cell_preference),
        caller_id=copy.deepcopy(request.caller_id) if request.caller_id is not None else None,
    )


def _tablet_type(tablet_type: topodata.TabletType) -> topodata.TabletType:
    if tablet_type == topodata.TabletType.UNKNOWN:
        return topodata.TabletType.PRIMARY
    if tablet_type not in _STREAMABLE_TYPES:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"tablet type {_type_name(tablet_type)} cannot serve a vstream; "
            "use PRIMARY, REPLICA or RDONLY",
        )
    return tablet_type


def _cells(cells_flag: str, gateway_cell: str) -> list[str]:
    cells = [cell.strip() for cell in cells_flag.split(",")]
    return [cell for cell in cells if cell] or [gateway_cell]


def _cell_preference(value: str) -> str:
    preference = value.strip().lower()
    if preference == "":
        return CELL_PREFERENCES[0]
    if preference not in CELL_PREFERENCES:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"invalid cell preference {quote(value)}: use {' or '.join(CELL_PREFERENCES)}",
        )
    return preference


def _shard_gtids(vgtid: binlogdata.VGtid | None, topology: Topology) -> list[binlogdata.ShardGtid]:
    if vgtid is None or not vgtid.shard_gtids:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            "vgtid must have at least one value with a starting position in ShardGtids",
        )
    entries = _expand_keyspaces(vgtid, topology)
    resolved: list[binlogdata.ShardGtid] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        for shard_gtid in _expand_shards(entry, topology):
            key = (shard_gtid.keyspace, shard_gtid.shard)
            if key in seen:
                raise VStreamError(
                    Code.INVALID_ARGUMENT,
                    f"shard {key[0]}/{mention(key[1])} appears more than once in ShardGtids; "
                    "give each shard exactly one starting position",
                )
            seen.add(key)
            resolved.append(shard_gtid)
    if not resolved:
        raise VStreamError(Code.FAILED_PRECONDITION, "the topology has no keyspaces to stream from")
    return resolved


def expand_keyspace_selector(
    vgtid: binlogdata.VGtid, topology: Topology, allowed: Callable[[str], bool]
) -> list[binlogdata.ShardGtid] | None:
    """A lone "" or "/regex" keyspace entry as one entry per ``allowed`` keyspace it selects.

    None when ``vgtid`` names its keyspaces (no selector). The list is empty
    when the selector matches no allowed keyspace; which keyspaces matched
    but were not allowed is not told. The entries resolve exactly as the
    selector would (same shard and gtid), so a caller may put them in the
    request in its place. A malformed selector raises what
    :func:`resolve_request` would.
    """
    entries = vgtid.shard_gtids
    if len(entries) != 1 or not (entries[0].keyspace == "" or entries[0].keyspace.startswith("/")):
        return None
    try:
        return _expand_keyspaces(vgtid, topology, allowed)
    except VStreamError as err:
        raise err.wrap(_PREFIX) from None


def _expand_keyspaces(
    vgtid: binlogdata.VGtid,
    topology: Topology,
    allowed: Callable[[str], bool] | None = None,
) -> list[binlogdata.ShardGtid]:
    """Replace a lone "" or "/regex" keyspace entry by one entry per keyspace.

    With ``allowed``, only the keyspaces it admits, and an empty list (not
    NOT_FOUND) when there are none.
    """
    entries = vgtid.shard_gtids
    if len(entries) == 1 and entries[0].keyspace == "":
        entry = entries[0]
        if entry.gtid != _CURRENT:
            raise VStreamError(
                Code.INVALID_ARGUMENT,
                "for an empty keyspace, the Gtid value must be 'current': " + _describe(vgtid),
            )
        _require_no_shard(entry)
        return [
            binlogdata.ShardGtid(keyspace=name, gtid=_CURRENT)
            for name in topology.keyspace_names()
            if allowed is None or allowed(name)
        ]
    if len(entries) == 1 and entries[0].keyspace.startswith("/"):
        entry = entries[0]
        regex = _compile_selector(entry.keyspace)
        names = [name for name in topology.keyspace_names() if regex.search(name)]
        if allowed is not None:
            return [
                binlogdata.ShardGtid(keyspace=name, shard=entry.shard, gtid=entry.gtid)
                for name in names
                if allowed(name)
            ]
        if not names:
            raise VStreamError(
                Code.NOT_FOUND,
                f"no keyspace matches {mention(entry.keyspace)}; known keyspaces: "
                + _known(topology.keyspace_names()),
            )
        # The shard (if any) applies to every matching keyspace; table_p_ks name
        # tables of one keyspace, so they are not carried over to the others.
        return [
            binlogdata.ShardGtid(keyspace=name, shard=entry.shard, gtid=entry.gtid)
            for name in names
        ]
    for entry in entries:
        if entry.keyspace == "" or entry.keyspace.startswith("/"):
            raise VStreamError(
                Code.INVALID_ARGUMENT,
                f"keyspace {quote(entry.keyspace)} selects several keyspaces, which is only "
                "allowed as the only entry of ShardGtids; name each keyspace instead",
            )
    return list(entries)


def _compile_selector(selector: str) -> Any:
    """The RE2 expression of a ``/regex`` selector; INVALID_ARGUMENT if it has none."""
    pattern = selector[1:]
    try:
        return compile_pattern(pattern)
    except PatternError as err:
        reason = _python_syntax_error(pattern)
        if reason is None:
            # Valid for Python's re but not for RE2: a backreference, a
            # lookaround or the like, which Vitess refuses as well.
            reason = f"{err} (keyspace patterns are RE2, like the Go regexp Vitess uses)"
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"failed to compile regexp using {mention(selector)}: {reason}",
        ) from None


def _python_syntax_error(pattern: str) -> str | None:
    """Python's explanation of a pattern it cannot parse, or None if it can.

    Only asked once RE2 has refused the pattern: a plain syntax error keeps
    the wording it always had. Compiling is linear in the pattern (no text is
    matched), and the pattern's length is bounded by --max-pattern-bytes.
    """
    try:
        with warnings.catch_warnings(action="ignore"):  # e.g. "possible nested set"
            re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as err:
        return str(err)
    return None


def _require_no_shard(entry: binlogdata.ShardGtid) -> None:
    if entry.shard:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"shard {quote(entry.shard)} is given without a keyspace; name its keyspace, "
            "or leave the shard empty to stream every keyspace",
        )


def _expand_shards(entry: binlogdata.ShardGtid, topology: Topology) -> list[binlogdata.ShardGtid]:
    keyspace = topology.keyspaces.get(entry.keyspace)
    if keyspace is None:
        raise VStreamError(
            Code.NOT_FOUND,
            f"keyspace {mention(entry.keyspace)} not found in the topology; known keyspaces: "
            + _known(topology.keyspace_names()),
        )
    if entry.shard == "":
        if entry.gtid not in (_CURRENT, ""):
            raise VStreamError(
                Code.INVALID_ARGUMENT,
                "if shards are unspecified, the Gtid value must be 'current' or empty; "
                f"got: {mention(entry.gtid)} (keyspace {entry.keyspace})",
            )
        if not keyspace.shards:
            raise VStreamError(
                Code.FAILED_PRECONDITION,
                f"keyspace {entry.keyspace} has no serving shards to stream from",
            )
        return [
            binlogdata.ShardGtid(keyspace=entry.keyspace, shard=shard, gtid=entry.gtid)
            for shard in keyspace.shards
        ]
    # A shard that no longer serves (or does not serve yet) is still known while
    # it has tablets: a client resuming from a VGtid taken before a reshard names
    # the old shards, and their journal moves the stream to the new ones.
    if entry.shard not in keyspace.shards and not topology.has_shard(entry.keyspace, entry.shard):
        raise VStreamError(
            Code.NOT_FOUND,
            f"shard {entry.keyspace}/{mention(entry.shard)} not found in the topology; serving "
            f"shards of {entry.keyspace}: " + _known(keyspace.shards),
        )
    _check_position(entry)
    return [copy.deepcopy(entry)]


def _check_position(entry: binlogdata.ShardGtid) -> None:
    gtid = entry.gtid
    if gtid in (_CURRENT, ""):
        return
    flavor, slash, _ = gtid.partition("/")
    if slash and flavor in POSITION_FLAVORS:
        return
    raise VStreamError(
        Code.INVALID_ARGUMENT,
        f"gtid {quote(gtid)} for {entry.keyspace}/{entry.shard} is not a valid position: use "
        "'current', '' (copy the tables first), or a position such as "
        "'MySQL56/<server uuid>:1-N' from a previous VGtid",
    )


def _known(names: list[str]) -> str:
    return ", ".join(names) if names else "(none)"


def _type_name(tablet_type: topodata.TabletType) -> str:
    name = getattr(tablet_type, "name", None)
    return name if isinstance(name, str) else str(int(tablet_type))


def _describe(vgtid: binlogdata.VGtid) -> str:
    """A compact rendering of a VGtid for error messages (its first entries, cut)."""
    entries = vgtid.shard_gtids
    parts = [
        f'{{keyspace:"{_inner(s.keyspace)}" shard:"{_inner(s.shard)}" gtid:"{_inner(s.gtid)}"}}'
        for s in entries[:2]
    ]
    if len(entries) > 2:
        parts.append(f"... ({len(entries)} entries)")
    return "shard_gtids:[" + " ".join(parts) + "]"


def _inner(value: str) -> str:
    """``value`` cut and escaped, without the quotes (the caller writes its own)."""
    quoted = quote(value, 64)
    return quoted[1:-1] if quoted.endswith("'") else quoted.rpartition("'... (")[0][1:] + "..."
