"""Output formats: a complete unit in, JSON lines out.

- ``json``: one line per row change: keyspace, shard, table, op
  (insert/update/delete), ts (commit time, seconds), position (the unit's
  VGtid as a list), index (the row's place in its transaction), snapshot,
  data, and old (updates only: previous values of the changed columns).
- ``maxwell``: Maxwell's field names: database, table, type
  (insert/update/delete, ``bootstrap-insert`` for copied rows), ts, xid,
  xoffset (every row but the last of a transaction), commit (the last row),
  data, old, plus position (the VGtid as compact JSON text) and shard.
  VStream carries no MySQL transaction id, so ``xid`` is derived from the
  transaction's own position (keyspace, shard and that shard's GTID set
  after it): the same transaction gets the same xid on every replay, which
  is what consumers use it for (grouping and de-duplicating a transaction's
  rows). Copied rows, like Maxwell's bootstrap rows, have no xid.
- ``debezium``: the record value Debezium's Vitess connector produces for the
  row with its default settings (see :mod:`vsmux.client.debezium`): before,
  after, source, transaction (null, or the connector's block with
  ``transaction_metadata``), op (c/u/d), ts_ms/ts_us/ts_ns.
- ``raw``: every event of the unit as proto JSON with proto field names.

Pure functions; nothing to cancel.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import betterproto2

from vsmux.client import debezium
from vsmux.client.assembler import RowChange, Unit
from vsmux.client.checkpoint import vgtid_to_json

__all__ = ["FORMATS", "Formatter", "dumps", "format_unit"]

# (unit, now in milliseconds) -> lines without newlines
Formatter = Callable[[Unit, int], list[str]]


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _position(unit: Unit) -> list[dict[str, Any]]:
    return vgtid_to_json(unit.position) if unit.position is not None else []


def _json_lines(unit: Unit, now_ms: int) -> list[str]:
    position = _position(unit)
    lines = []
    for index, row in enumerate(unit.rows):
        record = row.record
        line: dict[str, Any] = {
            "keyspace": row.keyspace,
            "shard": row.shard,
            "table": row.table,
            "op": record.op,
            "ts": unit.timestamp,
            "position": position,
            "index": index,
            "snapshot": row.snapshot,
            "data": record.data,
        }
        if record.op == "update":
            line["old"] = record.old
        lines.append(dumps(line))
    return lines


def _maxwell_type(row: RowChange) -> str:
    if row.snapshot and row.record.op == "insert":
        return "bootstrap-insert"
    return row.record.op


def _transaction_xid(unit: Unit) -> int | None:
    """A stable 63-bit id for ``unit``'s transaction, from its shard's position after it."""
    if not unit.rows or unit.position is None or unit.rows[0].snapshot:
        return None
    keyspace, shard = unit.rows[0].keyspace, unit.rows[0].shard
    for sg in unit.position.shard_gtids:
        if (sg.keyspace, sg.shard) == (keyspace, shard) and sg.gtid:
            digest = hashlib.blake2b(
                f"{keyspace}/{shard}@{sg.gtid}".encode(), digest_size=8
            ).digest()
            return int.from_bytes(digest, "big") >> 1  # fits a signed BIGINT, as Maxwell's
    return None


def _maxwell_lines(unit: Unit, now_ms: int) -> list[str]:
    position = dumps(_position(unit))
    xid = _transaction_xid(unit)
    last = len(unit.rows) - 1
    lines = []
    for index, row in enumerate(unit.rows):
        line: dict[str, Any] = {
            "database": row.keyspace,
            "table": row.table,
            "type": _maxwell_type(row),
            "ts": unit.timestamp,
        }
        if xid is not None:
            line["xid"] = xid
        if index == last:
            line["commit"] = True
        else:
            line["xoffset"] = index
        line["position"] = position
        line["shard"] = row.shard
        line["data"] = row.record.data
        if row.record.op == "update":
            line["old"] = row.record.old
        lines.append(dumps(line))
    return lines


def _debezium_lines(unit: Unit, now_ms: int, transaction_metadata: bool = False) -> list[str]:
    if not unit.rows:
        return []
    vgtid = debezium.vgtid_text(unit.position)
    blocks: list[dict[str, Any] | None] = [None] * len(unit.rows)
    if transaction_metadata:
        blocks = [*debezium.transaction_blocks(unit.rows, vgtid)]
    return [
        dumps(
            debezium.envelope(
                row,
                name="vsmux",
                commit_seconds=unit.timestamp,
                vgtid=vgtid,
                now_ms=now_ms,
                transaction=block,
            )
        )
        for row, block in zip(unit.rows, blocks, strict=True)
    ]


def _raw_lines(unit: Unit, now_ms: int) -> list[str]:
    return [dumps(e.to_dict(casing=betterproto2.Casing.SNAKE)) for e in unit.events]


FORMATS: dict[str, Formatter] = {
    "json": _json_lines,
    "maxwell": _maxwell_lines,
    "debezium": _debezium_lines,
    "raw": _raw_lines,
}


def format_unit(
    name: str, unit: Unit, now_ms: int = 0, *, transaction_metadata: bool = False
) -> list[str]:
    """The lines ``unit`` prints as in format ``name`` (KeyError for an unknown name).

    ``transaction_metadata`` fills ``debezium``'s ``transaction`` block, as the
    connector does with ``provide.transaction.metadata=true``.
    """
    if name == "debezium":
        return _debezium_lines(unit, now_ms, transaction_metadata)
    return FORMATS[name](unit, now_ms)
