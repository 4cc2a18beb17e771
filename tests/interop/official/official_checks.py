"""What a VStream client may rely on, checked on any list of ``VStreamResponse``.

Each function returns a list of readable violations (empty = fine), naming
the response (``#i``) and the event types involved, so a failing test says
exactly what the client saw. They work on the classes generated from the
official protos (any object with the same fields works too).

- :func:`framing_violations`: one unit per response, as vtgate sends them
  (in its vstream_manager.go each unit is one ``eventCh`` item of
  ``sendAll``, and each item becomes one response). Debezium's connector
  buffers one response as at most one transaction: a BEGIN after a COMMIT
  in the same response is an error there, and it stamps every event of a
  response with the response's last VGTID.
- :func:`unit_violations`: transactions whole and from one shard, VGTID
  before COMMIT, FIELD before a shard's first ROW of a table, FIELD/ROW with
  keyspace, shard and a ``ks.table`` name.
- :func:`unknown_field_violations`: field numbers or enum values the official
  classes do not know (a gateway must not need a newer client).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.unknown_fields import UnknownFieldSet

__all__ = [
    "all_violations",
    "assert_clean",
    "framing_violations",
    "unit_violations",
    "unknown_field_violations",
]

# VEventType numbers, as in binlogdata.proto (the generated enum agrees; the
# tests check that in test_official_checks).
BEGIN, COMMIT, ROLLBACK, DDL, OTHER = 2, 3, 4, 5, 11
ROW, FIELD, HEARTBEAT, VGTID, JOURNAL, COPY_COMPLETED = 12, 13, 14, 15, 16, 20
TERMINATORS = frozenset((COMMIT, DDL, OTHER, ROLLBACK))
# Events that finish a unit when they are a response's last event.
UNIT_ENDS = TERMINATORS | {HEARTBEAT, COPY_COMPLETED}
# Events a unit may begin with: a transaction, a [VGTID, DDL|OTHER] unit, a
# gateway heartbeat, a COPY_COMPLETED.
UNIT_STARTS = frozenset((BEGIN, VGTID, DDL, OTHER, HEARTBEAT, COPY_COMPLETED))

_NAMES = {
    BEGIN: "BEGIN",
    COMMIT: "COMMIT",
    ROLLBACK: "ROLLBACK",
    DDL: "DDL",
    OTHER: "OTHER",
    ROW: "ROW",
    FIELD: "FIELD",
    HEARTBEAT: "HEARTBEAT",
    VGTID: "VGTID",
    JOURNAL: "JOURNAL",
    COPY_COMPLETED: "COPY_COMPLETED",
}


def _name(kind: int) -> str:
    return _NAMES.get(kind, str(kind))


def _shape(events: Sequence[Any]) -> str:
    """``[BEGIN, ROW, VGTID, COMMIT]``, shortened for long responses."""
    names = [_name(e.type) for e in events]
    if len(names) > 12:
        names = [*names[:6], f"... {len(names) - 10} more ...", *names[-4:]]
    return "[" + ", ".join(names) + "]"


def _is_copy_position_unit(events: Sequence[Any]) -> bool:
    """``[BEGIN, VGTID, ..., VGTID, COMMIT]`` of one shard: a copy's bookkeeping.

    vtgate replaces every LASTPK and GTID event of a unit with a VGTID
    (``sendAll`` in vstream_manager.go, v16.0.2), so the unit that starts a copy
    (one LASTPK per table, then the snapshot GTID) reaches clients as one
    transaction holding several VGTIDs; the last one is the unit's position.
    Several VGTIDs of ONE unit are harmless to Debezium, which keeps the last.
    """
    if len(events) < 4 or events[0].type != BEGIN or events[-1].type != COMMIT:
        return False
    shards = {(e.keyspace, e.shard) for e in events}
    return len(shards) == 1 and all(e.type == VGTID for e in events[1:-1])


def framing_violations(responses: Iterable[Any], *, ended_by_server: bool = False) -> list[str]:
    """Violations of "one unit per response" over a whole response stream.

    A unit is a transaction (BEGIN ... VGTID ... COMMIT, or one a ROLLBACK
    ends), a ``[VGTID, DDL]`` or ``[VGTID, OTHER]`` unit (also the first one
    of a ``current`` start), a forwarded JOURNAL transaction, a
    COPY_COMPLETED (with the keyspace-less one that ends the whole copy), or
    a gateway HEARTBEAT. A unit larger than the response limit may continue
    over consecutive responses with nothing else in between. So, per response:
    at most one terminator (COMMIT/DDL/OTHER/ROLLBACK) and nothing after it,
    at most one VGTID, BEGIN only first, HEARTBEAT and COPY_COMPLETED only in
    responses of their own, and while a unit is open (a response did not end
    it) the next response continues it. ``ended_by_server``: the server ended
    the call, so no unit may be left open.
    """
    problems: list[str] = []
    open_since: int | None = None  # response index where the open unit began
    for i, response in enumerate(responses):
        events = list(response.events)
        where = f"response #{i} {_shape(events)}"
        if not events:
            problems.append(f"{where}: an empty response")
            continue
        kinds = [e.type for e in events]
        ends = [j for j, k in enumerate(kinds) if k in TERMINATORS]
        if len(ends) > 1:
            problems.append(f"{where}: {len(ends)} terminators, i.e. more than one unit")
        if ends and ends[0] != len(events) - 1:
            problems.append(f"{where}: events after the {_name(kinds[ends[0]])} that ends the unit")
        vgtids = kinds.count(VGTID)
        if vgtids > 1 and not _is_copy_position_unit(events):
            problems.append(f"{where}: {vgtids} VGTIDs in one response")
        if kinds.count(JOURNAL) > 1:
            problems.append(f"{where}: more than one JOURNAL")
        late = [j for j, kind in enumerate(kinds) if kind == BEGIN and j > 0]
        if late:
            problems.append(f"{where}: BEGIN at position {late}, after another unit's events")
        if HEARTBEAT in kinds and kinds != [HEARTBEAT]:
            problems.append(f"{where}: a HEARTBEAT shares its response")
        if COPY_COMPLETED in kinds:
            # A shard's COPY_COMPLETED, and after the last shard's, the
            # keyspace-less one that ends the whole copy, in the same unit.
            shards = [e.shard for e in events]
            overall = shards.count("")
            fits = (
                set(kinds) == {COPY_COMPLETED}
                and overall <= 1
                and len(shards) - overall <= 1
                and (overall == 0 or shards[-1] == "")
            )
            if not fits:
                problems.append(f"{where}: a COPY_COMPLETED shares its response")
        if open_since is not None:
            if kinds[0] in (BEGIN, HEARTBEAT, COPY_COMPLETED):
                problems.append(
                    f"{where}: starts a new unit while the unit of response "
                    f"#{open_since} is still open"
                )
        elif kinds[0] not in UNIT_STARTS:
            problems.append(f"{where}: starts with {_name(kinds[0])}, which begins no unit")
        if kinds[-1] in UNIT_ENDS:
            open_since = None
        elif open_since is None:
            open_since = i
    if ended_by_server and open_since is not None:
        problems.append(f"the stream ended inside the unit begun in response #{open_since}")
    return problems


def _events(responses: Iterable[Any]) -> Iterable[tuple[int, Any]]:
    for i, response in enumerate(responses):
        for event in response.events:
            yield i, event


def unit_violations(responses: Iterable[Any], *, exclude_keyspace: bool = False) -> list[str]:
    """Transaction atomicity and the per-event rules, across response boundaries.

    - every event between a BEGIN and its COMMIT/ROLLBACK is of the BEGIN's
      keyspace and shard (no interleaving with another shard), with no BEGIN,
      DDL, OTHER, HEARTBEAT or COPY_COMPLETED in between;
    - a COMMIT is preceded by a VGTID of its own transaction;
    - FIELD and ROW events sit inside a transaction, carry keyspace and shard,
      and name their table ``<keyspace>.<table>`` (bare with
      ``exclude_keyspace``);
    - a shard's first ROW of a table comes after a FIELD for it.
    """
    problems: list[str] = []
    open_tx: tuple[str, str] | None = None
    tx_vgtid = False
    fields_seen: set[tuple[str, str, str]] = set()
    for i, event in _events(responses):
        kind, source = event.type, (event.keyspace, event.shard)
        where = f"response #{i} {_name(kind)} of {event.keyspace}/{event.shard}"
        if kind == BEGIN:
            if open_tx is not None:
                problems.append(f"{where}: inside the open transaction of {'/'.join(open_tx)}")
            open_tx, tx_vgtid = source, False
            continue
        if kind in (COMMIT, ROLLBACK):
            if open_tx is None:
                problems.append(f"{where}: without a BEGIN")
            elif kind == COMMIT and not tx_vgtid:
                problems.append(f"{where}: no VGTID before the COMMIT")
            if open_tx is not None and source != open_tx:
                problems.append(f"{where}: ends the transaction of {'/'.join(open_tx)}")
            open_tx = None
            continue
        if kind in (DDL, OTHER, HEARTBEAT, COPY_COMPLETED) and open_tx is not None:
            problems.append(f"{where}: inside the open transaction of {'/'.join(open_tx)}")
            continue
        if open_tx is not None and source != open_tx:
            problems.append(f"{where}: interleaved into the transaction of {'/'.join(open_tx)}")
        if kind == VGTID:
            tx_vgtid = True
        if kind in (FIELD, ROW):
            problems.extend(_table_event_problems(where, event, open_tx, exclude_keyspace))
            body = event.field_event if kind == FIELD else event.row_event
            key = (event.keyspace, event.shard, body.table_name)
            if kind == FIELD:
                fields_seen.add(key)
            elif key not in fields_seen:
                problems.append(f"{where}: ROW of {body.table_name} before any FIELD for it")
    return problems


def _table_event_problems(
    where: str, event: Any, open_tx: tuple[str, str] | None, exclude_keyspace: bool
) -> list[str]:
    problems = []
    body = event.field_event if event.type == FIELD else event.row_event
    if open_tx is None:
        problems.append(f"{where}: outside any transaction")
    if not event.keyspace or not event.shard:
        problems.append(f"{where}: no keyspace/shard on the event")
    if body.keyspace != event.keyspace or body.shard != event.shard:
        problems.append(f"{where}: the {_name(event.type)} body says {body.keyspace}/{body.shard}")
    name = body.table_name
    prefix, dot, table = name.partition(".")
    if exclude_keyspace:
        if dot:
            problems.append(f"{where}: table name {name!r} should be bare")
    elif not dot or prefix != event.keyspace or not table or "." in table:
        problems.append(f"{where}: table name {name!r} is not {event.keyspace}.<table>")
    return problems


def unknown_field_violations(responses: Iterable[Any], known_events: frozenset[int]) -> list[str]:
    """Fields and event types the official classes had to keep as unknown.

    ``known_events``: the VEventType numbers the official enum defines.
    """
    problems: list[str] = []
    for i, response in enumerate(responses):
        numbers = _unknown_numbers(response)
        if numbers:
            problems.append(f"response #{i}: unknown field numbers {sorted(numbers)}")
        for event in response.events:
            if event.type not in known_events:
                problems.append(f"response #{i}: event type {event.type} is not in the enum")
    return problems


def _unknown_numbers(message: Any) -> set[str]:
    """``Message.field`` names of every unknown field in ``message``, recursively."""
    found = {f"{message.DESCRIPTOR.full_name}.{f.field_number}" for f in UnknownFieldSet(message)}
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None or descriptor.message_type.GetOptions().map_entry:
            continue
        values = value if descriptor.is_repeated else [value]
        for item in values:
            found |= _unknown_numbers(item)
    return found


def all_violations(
    official: Any,
    responses: Sequence[Any],
    *,
    ended_by_server: bool = False,
    exclude_keyspace: bool = False,
) -> dict[str, list[str]]:
    """Every check above, by name; a clean stream gives empty lists only."""
    known = frozenset(official.binlogdata.VEventType.values())
    return {
        "framing": framing_violations(responses, ended_by_server=ended_by_server),
        "units": unit_violations(responses, exclude_keyspace=exclude_keyspace),
        "unknown": unknown_field_violations(responses, known),
    }


def assert_clean(official: Any, responses: Sequence[Any], **options: Any) -> None:
    """Fail with the violations of :func:`all_violations`, one per line (first 15 each)."""
    found = all_violations(official, responses, **options)
    lines = []
    for check, problems in found.items():
        lines += [f"{check}: {p}" for p in problems[:15]]
        if len(problems) > 15:
            lines.append(f"{check}: ... and {len(problems) - 15} more")
    assert not lines, f"{len(responses)} responses; violations:\n" + "\n".join(lines)
