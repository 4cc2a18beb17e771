"""Row changes committed in a simulated cluster, and the same view of Debezium's records.

:func:`committed_changes` reads the simulated shards' own binlogs (``ShardLog``, the
entries every tablet streams from) and lists each committed row change as a
:class:`RowChange`: shard, the transaction's GTID sequence number, table, Debezium's
``op`` letter (``c``/``u``/``d``) and the primary key in the form Debezium's JSON key
has it (bigint columns as numbers, binary columns base64). :func:`debezium_changes`
maps the connector's records onto the same tuple, so the two compare as multisets.

:func:`log_marks` takes the per-shard sequence numbers at a moment, so a test can ask
for exactly the changes committed after it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.interop.debezium.debezium_runner import ConnectorRecord
from vsmux.proto import binlogdata
from vsmux.sources._simulated.binlog import EntryKind, ShardLog
from vsmux.sources._simulated.cluster import SimulatedCluster
from vsmux.sources._simulated.rows import decode_row
from vsmux.sources._simulated.schema import TableSchema

__all__ = [
    "RowChange",
    "committed_changes",
    "debezium_changes",
    "debezium_key",
    "in_copy_phase",
    "log_marks",
    "record_key",
    "seqno_of",
    "snapshot_keys",
]

Key = tuple[tuple[str, Any], ...]  # (column, JSON value) pairs in column order


@dataclass(frozen=True, order=True)
class RowChange:
    """One row change of one committed transaction."""

    shard: str
    seqno: int  # N of the transaction's GTID ``uuid:N`` on its shard
    table: str
    op: str  # "c", "u" or "d", as Debezium's value.op
    key: Key


def seqno_of(gtid: str) -> int:
    """N of ``MySQL56/<uuid>:1-N`` (or ``:N``); 0 for an empty set (``MySQL56/<uuid>``)."""
    if ":" not in gtid:
        return 0
    return int(gtid.rsplit(":", 1)[1].rsplit("-", 1)[-1])


def debezium_key(schema: TableSchema, pk: tuple[bytes, ...]) -> Key:
    """The primary key as Debezium's JSON converter renders it, as pairs."""
    out = []
    for index, raw in zip(schema.pk, pk, strict=True):
        column = schema.columns[index]
        value: Any = int(raw) if column.numeric_key else base64.b64encode(raw).decode()
        out.append((column.name, value))
    return tuple(out)


def _shard_logs(cluster: SimulatedCluster, keyspace: str) -> dict[str, ShardLog]:
    # Every shard the keyspace ever had, resharded-away ones included.
    logs: dict[str, ShardLog] = {}
    for tablet in cluster.topology.tablets:
        if tablet.keyspace == keyspace and tablet.shard not in logs:
            logs[tablet.shard] = cluster.shard_log(keyspace, tablet.shard)
    return logs


def log_marks(cluster: SimulatedCluster, keyspace: str) -> dict[str, int]:
    """Each shard's last committed sequence number now."""
    return {shard: log.last_seqno for shard, log in _shard_logs(cluster, keyspace).items()}


def committed_changes(
    cluster: SimulatedCluster,
    keyspace: str,
    since: Mapping[str, int] | None = None,
    *,
    shards: Iterable[str] | None = None,
    tables: Iterable[str] | None = None,
) -> list[RowChange]:
    """Row changes committed after ``since`` (per shard; a shard not in it: all).

    Decodes the ROW events the shard's binlog holds for each transaction. Only the
    given ``shards``/``tables`` when set. Entries already purged from a binlog are not
    listed (the default retention keeps far more than a test writes).
    """
    marks = dict(since or {})
    wanted_shards = set(shards) if shards is not None else None
    wanted_tables = set(tables) if tables is not None else None
    out: list[RowChange] = []
    for shard, log in sorted(_shard_logs(cluster, keyspace).items()):
        if wanted_shards is not None and shard not in wanted_shards:
            continue
        for entry in log.entries_after(marks.get(shard, 0)):
            if entry.kind is not EntryKind.TRANSACTION:
                continue
            for part in entry.parts:
                if wanted_tables is not None and part.table not in wanted_tables:
                    continue
                schema = log.schema_version(part.table, part.version)
                for raw in part.row_events:
                    row_event = binlogdata.VEvent.parse(raw).row_event
                    assert row_event is not None
                    for change in row_event.row_changes:
                        before = decode_row(change.before) if change.before else None
                        after = decode_row(change.after) if change.after else None
                        op = "c" if before is None else "d" if after is None else "u"
                        image = after if after is not None else before
                        assert image is not None
                        key = debezium_key(schema, schema.pk_of(image))
                        out.append(RowChange(shard, entry.seqno, part.table, op, key))
    return out


def snapshot_keys(cluster: SimulatedCluster, keyspace: str) -> dict[str, set[Key]]:
    """Per table, the keys of every row in the keyspace's serving shards now."""
    out: dict[str, set[Key]] = {}
    shard = cluster.topology.serving_shards(keyspace)[0]
    schemas = cluster.shard_log(keyspace, shard).schemas
    for table, rows in cluster.table_contents(keyspace).items():
        out[table] = {debezium_key(schemas[table], pk) for pk in rows}
    return out


def record_key(record: ConnectorRecord) -> Key:
    """A record's JSON key as pairs in the connector's column order."""
    assert isinstance(record.key, dict), record
    return tuple(record.key.items())


def _own_shard_gtid(record: ConnectorRecord) -> dict[str, Any]:
    """The entry of the record's ``source.vgtid`` for the record's own shard."""
    source = record.value["source"]
    entries = {sg["shard"]: sg for sg in json.loads(source["vgtid"])}
    entry: dict[str, Any] = entries[source["shard"]]
    return entry


def in_copy_phase(record: ConnectorRecord) -> bool:
    """Whether the record came from the copy phase of ``snapshot.mode=initial``.

    Debezium's Vitess connector emits copied rows as ``op`` ``c`` (never ``r``) with
    ``source.snapshot`` false; what marks them is their VGTID: while a shard's tables
    are being copied its entry lists them in ``table_p_ks`` (the last copied key per
    table), and the list is empty once the copy is done. Changes replayed during a copy
    count as copy phase too; the tests here write nothing while a copy runs.
    """
    return record.value is not None and bool(_own_shard_gtid(record).get("table_p_ks"))


def debezium_changes(records: Iterable[ConnectorRecord]) -> list[RowChange]:
    """The streamed change records as :class:`RowChange` values.

    The sequence number is the one the record's ``source.vgtid`` gives for the record's
    own shard: the connector stamps each record with its transaction's VGTID.
    Copy-phase records (:func:`in_copy_phase`) and tombstones are left out.
    """
    out = []
    for record in records:
        value = record.value
        if value is None or in_copy_phase(record):
            continue
        source = value["source"]
        seqno = seqno_of(_own_shard_gtid(record)["gtid"])
        change = RowChange(source["shard"], seqno, source["table"], value["op"], record_key(record))
        out.append(change)
    return out
