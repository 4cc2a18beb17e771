"""Checkpoints: the VGtid of the last fully written unit, per client id, in SQLite.

A checkpoint is the JSON list Debezium and Maxwell also store::

    [{"keyspace": "commerce", "shard": "-80", "gtid": "MySQL56/...:1-42",
      "table_p_ks": [{"table_name": "customer", "lastpk": {...}}]}]

(``table_p_ks`` entries use the proto field names of ``binlogdata.TableLastPK``
and are present only while a shard is still copying.)

The store is one SQLite file in WAL mode with one row per client id, so
several tail processes with different ids can share a file, and a reader
never blocks the writer. ``save`` commits before returning: once it returns,
a crash of the process cannot lose that checkpoint. (``synchronous=NORMAL``:
the output lines are not fsynced either, so fsyncing only the checkpoint
would buy nothing against power loss.)

Synchronous; each call is one short SQLite transaction and cannot be
interrupted halfway by cancellation.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import betterproto2

from vsmux.proto import binlogdata

__all__ = ["CheckpointError", "CheckpointStore", "vgtid_from_json", "vgtid_to_json"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    client_id  TEXT PRIMARY KEY,
    vgtid      TEXT NOT NULL,
    updated_at REAL NOT NULL
)
"""


class CheckpointError(ValueError):
    """A checkpoint or position that cannot be read; the message says which and why."""


def vgtid_to_json(vgtid: binlogdata.VGtid) -> list[dict[str, Any]]:
    """The JSON-ready list form of a VGtid (always has the four keys)."""
    out = []
    for sg in vgtid.shard_gtids:
        out.append(
            {
                "keyspace": sg.keyspace,
                "shard": sg.shard,
                "gtid": sg.gtid,
                "table_p_ks": [t.to_dict(casing=betterproto2.Casing.SNAKE) for t in sg.table_p_ks],
            }
        )
    return out


def vgtid_from_json(value: str | list[Any]) -> binlogdata.VGtid:
    """Parse the list form (or its JSON text) back into a VGtid.

    Raises :class:`CheckpointError` describing the first problem found.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"position is not valid JSON: {exc}") from None
    if not isinstance(value, list) or not value:
        raise CheckpointError(
            "position must be a non-empty JSON list of "
            '{"keyspace", "shard", "gtid", "table_p_ks"} objects'
        )
    shard_gtids = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise CheckpointError(f"position entry {i} is not an object")
        for key in ("keyspace", "shard", "gtid"):
            if not isinstance(entry.get(key, ""), str):
                raise CheckpointError(f"position entry {i}: {key!r} must be a string")
        if not entry.get("keyspace"):
            raise CheckpointError(f"position entry {i} has no keyspace")
        pks = entry.get("table_p_ks")
        if pks is None:
            pks = []
        if not isinstance(pks, list):
            raise CheckpointError(f"position entry {i}: 'table_p_ks' must be a list")
        try:
            table_p_ks = [binlogdata.TableLastPk.from_dict(pk) for pk in pks]
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"position entry {i}: bad table_p_ks: {exc}") from None
        shard_gtids.append(
            binlogdata.ShardGtid(
                keyspace=entry["keyspace"],
                shard=entry.get("shard", ""),
                gtid=entry.get("gtid", ""),
                table_p_ks=table_p_ks,
            )
        )
    return binlogdata.VGtid(shard_gtids=shard_gtids)


class CheckpointStore:
    """Positions per client id in one SQLite file (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            # isolation_level=None (autocommit): each statement is its own
            # transaction, committed before execute() returns.
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise CheckpointError(f"cannot open checkpoint file {self.path}: {exc}") from None

    def load(self, client_id: str) -> binlogdata.VGtid | None:
        """The stored position for ``client_id``, or None if there is none."""
        row = self._db.execute(
            "SELECT vgtid FROM checkpoints WHERE client_id = ?", (client_id,)
        ).fetchone()
        if row is None:
            return None
        try:
            return vgtid_from_json(row[0])
        except CheckpointError as exc:
            raise CheckpointError(
                f"checkpoint of client id {client_id!r} in {self.path} is unreadable ({exc}); "
                "delete it or use another --client-id"
            ) from None

    def save(self, client_id: str, vgtid: binlogdata.VGtid) -> None:
        """Store ``vgtid`` for ``client_id``; durable against a crash once this returns."""
        text = json.dumps(vgtid_to_json(vgtid), separators=(",", ":"))
        self._db.execute(
            "INSERT INTO checkpoints (client_id, vgtid, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(client_id) DO UPDATE SET vgtid = excluded.vgtid, "
            "updated_at = excluded.updated_at",
            (client_id, text, time.time()),
        )

    def delete(self, client_id: str) -> None:
        """Forget ``client_id``'s position."""
        self._db.execute("DELETE FROM checkpoints WHERE client_id = ?", (client_id,))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
