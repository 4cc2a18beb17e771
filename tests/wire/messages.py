"""Representative messages for the wire-compatibility tests.

Each case is written twice, independently: once with the generated
betterproto2 classes and once as a protobuf JSON-style dict (proto field
names, enum names, base64 bytes) that protobuf builds itself. The tests
compare the encodings, so a mistake on either side shows up.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import betterproto2

from vsmux.proto import binlogdata, query, topodata, vtgate, vtrpc

B = binlogdata
T = binlogdata.VEventType


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Case:
    id: str
    full_name: str
    message: betterproto2.Message
    as_dict: dict[str, Any]


GTID = (
    "MySQL56/4dd3e8a0-1b2c-11ef-9d8e-0242ac120002:1-30219,4dd3e8a0-1b2c-11ef-9d8e-0242ac120003:1-19"
)
NOW_NS = 1_714_566_896_123_456_789

ROW_VALUES = b"42" + b"" + b"\x00\xff\x10binary" + b"2024-05-01 12:34:56.123456"
ROW_LENGTHS = [2, -1, 0, 9, 26]

FIELDS = [
    query.Field(
        name="id",
        type=query.Type.INT64,
        table="customer",
        org_table="customer",
        database="vt_commerce",
        org_name="id",
        column_length=20,
        charset=63,
        flags=1 | 2 | 32768,
        column_type="bigint",
    ),
    query.Field(name="email", type=query.Type.VARCHAR, column_length=1020, charset=255),
    query.Field(name="note", type=query.Type.TEXT, flags=16),
    query.Field(name="blob", type=query.Type.VARBINARY, charset=63, flags=128),
    query.Field(name="ts", type=query.Type.DATETIME, decimals=6, column_type="datetime(6)"),
]
FIELDS_DICT = [
    {
        "name": "id",
        "type": "INT64",
        "table": "customer",
        "org_table": "customer",
        "database": "vt_commerce",
        "org_name": "id",
        "column_length": 20,
        "charset": 63,
        "flags": 1 | 2 | 32768,
        "column_type": "bigint",
    },
    {"name": "email", "type": "VARCHAR", "column_length": 1020, "charset": 255},
    {"name": "note", "type": "TEXT", "flags": 16},
    {"name": "blob", "type": "VARBINARY", "charset": 63, "flags": 128},
    {"name": "ts", "type": "DATETIME", "decimals": 6, "column_type": "datetime(6)"},
]

LASTPK_RESULT = query.QueryResult(
    fields=[query.Field(name="id", type=query.Type.INT64)],
    rows=[query.Row(lengths=[3], values=b"100")],
)
LASTPK_RESULT_DICT = {
    "fields": [{"name": "id", "type": "INT64"}],
    "rows": [{"lengths": ["3"], "values": b64(b"100")}],
}


def _event(id: str, message: binlogdata.VEvent, as_dict: dict[str, Any]) -> Case:
    return Case(f"VEvent-{id}", "binlogdata.VEvent", message, as_dict)


EVENTS = [
    _event(
        "GTID",
        B.VEvent(type=T.GTID, timestamp=1_714_566_896, gtid=GTID, keyspace="ks", shard="-80"),
        {
            "type": "GTID",
            "timestamp": 1_714_566_896,
            "gtid": GTID,
            "keyspace": "ks",
            "shard": "-80",
        },
    ),
    _event(
        "BEGIN",
        B.VEvent(type=T.BEGIN, timestamp=1, current_time=NOW_NS, keyspace="ks", shard="80-"),
        {
            "type": "BEGIN",
            "timestamp": 1,
            "current_time": str(NOW_NS),
            "keyspace": "ks",
            "shard": "80-",
        },
    ),
    _event(
        "COMMIT",
        B.VEvent(type=T.COMMIT, timestamp=-5, current_time=-(2**63)),
        {"type": "COMMIT", "timestamp": -5, "current_time": str(-(2**63))},
    ),
    _event("ROLLBACK", B.VEvent(type=T.ROLLBACK), {"type": "ROLLBACK"}),
    _event(
        "DDL",
        B.VEvent(type=T.DDL, statement="alter table customer add column note text", gtid=GTID),
        {"type": "DDL", "statement": "alter table customer add column note text", "gtid": GTID},
    ),
    _event(
        "OTHER",
        B.VEvent(type=T.OTHER, gtid=GTID, sequence_number=2**62, commit_parent=7),
        {"type": "OTHER", "gtid": GTID, "sequence_number": str(2**62), "commit_parent": "7"},
    ),
    _event(
        "FIELD",
        B.VEvent(
            type=T.FIELD,
            timestamp=1_714_566_896,
            field_event=B.FieldEvent(
                table_name="customer",
                fields=FIELDS,
                keyspace="commerce",
                shard="-80",
                enum_set_string_values=True,
            ),
            current_time=NOW_NS,
            keyspace="commerce",
            shard="-80",
        ),
        {
            "type": "FIELD",
            "timestamp": 1_714_566_896,
            "field_event": {
                "table_name": "customer",
                "fields": FIELDS_DICT,
                "keyspace": "commerce",
                "shard": "-80",
                "enum_set_string_values": True,
            },
            "current_time": str(NOW_NS),
            "keyspace": "commerce",
            "shard": "-80",
        },
    ),
    _event(
        "ROW",
        B.VEvent(
            type=T.ROW,
            timestamp=1_714_566_896,
            row_event=B.RowEvent(
                table_name="customer",
                row_changes=[
                    B.RowChange(after=query.Row(lengths=ROW_LENGTHS, values=ROW_VALUES)),
                    B.RowChange(
                        before=query.Row(lengths=ROW_LENGTHS, values=ROW_VALUES),
                        after=query.Row(lengths=[-1, -1, -1, 0, 1], values=b"\x00"),
                        data_columns=B.RowChangeBitmap(count=5, cols=b"\x1f"),
                        json_partial_values=B.RowChangeBitmap(count=5, cols=b"\x00"),
                    ),
                    B.RowChange(before=query.Row(lengths=[0], values=b"")),
                ],
                keyspace="commerce",
                shard="-80",
                flags=4,
            ),
            current_time=NOW_NS,
            keyspace="commerce",
            shard="-80",
            throttled=True,
            throttled_reason="lag",
            event_gtid=GTID,
        ),
        {
            "type": "ROW",
            "timestamp": 1_714_566_896,
            "row_event": {
                "table_name": "customer",
                "row_changes": [
                    {"after": {"lengths": ROW_LENGTHS, "values": b64(ROW_VALUES)}},
                    {
                        "before": {"lengths": ROW_LENGTHS, "values": b64(ROW_VALUES)},
                        "after": {"lengths": [-1, -1, -1, 0, 1], "values": b64(b"\x00")},
                        "data_columns": {"count": 5, "cols": b64(b"\x1f")},
                        "json_partial_values": {"count": 5, "cols": b64(b"\x00")},
                    },
                    {"before": {"lengths": [0]}},
                ],
                "keyspace": "commerce",
                "shard": "-80",
                "flags": 4,
            },
            "current_time": str(NOW_NS),
            "keyspace": "commerce",
            "shard": "-80",
            "throttled": True,
            "throttled_reason": "lag",
            "event_gtid": GTID,
        },
    ),
    _event(
        "HEARTBEAT",
        B.VEvent(type=T.HEARTBEAT, timestamp=1_714_566_896, current_time=NOW_NS),
        {"type": "HEARTBEAT", "timestamp": 1_714_566_896, "current_time": str(NOW_NS)},
    ),
    _event(
        "VGTID",
        B.VEvent(
            type=T.VGTID,
            vgtid=B.VGtid(
                shard_gtids=[
                    B.ShardGtid(keyspace="commerce", shard="-80", gtid=GTID),
                    B.ShardGtid(
                        keyspace="commerce",
                        shard="80-",
                        gtid="",
                        table_p_ks=[B.TableLastPk(table_name="customer", lastpk=LASTPK_RESULT)],
                    ),
                ]
            ),
        ),
        {
            "type": "VGTID",
            "vgtid": {
                "shard_gtids": [
                    {"keyspace": "commerce", "shard": "-80", "gtid": GTID},
                    {
                        "keyspace": "commerce",
                        "shard": "80-",
                        "table_p_ks": [{"table_name": "customer", "lastpk": LASTPK_RESULT_DICT}],
                    },
                ]
            },
        },
    ),
    _event(
        "JOURNAL",
        B.VEvent(
            type=T.JOURNAL,
            journal=B.Journal(
                id=-(2**40),
                migration_type=B.MigrationType.SHARDS,
                tables=["customer", "corder"],
                local_position=GTID,
                shard_gtids=[B.ShardGtid(keyspace="commerce", shard="-40", gtid=GTID)],
                participants=[B.KeyspaceShard(keyspace="commerce", shard="-80")],
                source_workflows=["reshard"],
            ),
        ),
        {
            "type": "JOURNAL",
            "journal": {
                "id": str(-(2**40)),
                "migration_type": "SHARDS",
                "tables": ["customer", "corder"],
                "local_position": GTID,
                "shard_gtids": [{"keyspace": "commerce", "shard": "-40", "gtid": GTID}],
                "participants": [{"keyspace": "commerce", "shard": "-80"}],
                "source_workflows": ["reshard"],
            },
        },
    ),
    _event(
        "LASTPK",
        B.VEvent(
            type=T.LASTPK,
            last_p_k_event=B.LastPkEvent(
                table_last_p_k=B.TableLastPk(table_name="customer", lastpk=LASTPK_RESULT),
                completed=True,
            ),
        ),
        {
            "type": "LASTPK",
            "last_p_k_event": {
                "table_last_p_k": {"table_name": "customer", "lastpk": LASTPK_RESULT_DICT},
                "completed": True,
            },
        },
    ),
    _event(
        "COPY_COMPLETED",
        B.VEvent(type=T.COPY_COMPLETED, keyspace="commerce", shard="-80"),
        {"type": "COPY_COMPLETED", "keyspace": "commerce", "shard": "-80"},
    ),
]

OTHERS = [
    Case(
        "vtgate.VStreamRequest-all-flags",
        "vtgate.VStreamRequest",
        vtgate.VStreamRequest(
            caller_id=vtrpc.CallerId(principal="etl", component="debezium", groups=["a", "b"]),
            tablet_type=topodata.TabletType.REPLICA,
            vgtid=B.VGtid(shard_gtids=[B.ShardGtid(keyspace="commerce", gtid="current")]),
            filter=B.Filter(
                rules=[
                    B.Rule(match="/.*/", filter=""),
                    B.Rule(match="t", filter="select * from t"),
                ],
                field_event_mode=B.FilterFieldEventMode.BEST_EFFORT,
                workflow_type=3,
                workflow_name="wf",
            ),
            flags=vtgate.VStreamFlags(
                minimize_skew=True,
                heartbeat_interval=10,
                stop_on_reshard=True,
                cells="zone1,zone2",
                cell_preference="onlyspecified",
                tablet_order="inorder",
                stream_keyspace_heartbeats=True,
                include_reshard_journal_events=True,
                tables_to_copy=["customer", "corder"],
                exclude_keyspace_from_table_name=True,
                transaction_chunk_size=4 << 20,
            ),
        ),
        {
            "caller_id": {"principal": "etl", "component": "debezium", "groups": ["a", "b"]},
            "tablet_type": "REPLICA",
            "vgtid": {"shard_gtids": [{"keyspace": "commerce", "gtid": "current"}]},
            "filter": {
                "rules": [{"match": "/.*/"}, {"match": "t", "filter": "select * from t"}],
                "field_event_mode": "BEST_EFFORT",
                "workflow_type": "3",
                "workflow_name": "wf",
            },
            "flags": {
                "minimize_skew": True,
                "heartbeat_interval": 10,
                "stop_on_reshard": True,
                "cells": "zone1,zone2",
                "cell_preference": "onlyspecified",
                "tablet_order": "inorder",
                "stream_keyspace_heartbeats": True,
                "include_reshard_journal_events": True,
                "tables_to_copy": ["customer", "corder"],
                "exclude_keyspace_from_table_name": True,
                "transaction_chunk_size": str(4 << 20),
            },
        },
    ),
    Case(
        "binlogdata.Journal",
        "binlogdata.Journal",
        B.Journal(id=7, tables=["t"], participants=[B.KeyspaceShard(keyspace="k", shard="-")]),
        {"id": "7", "tables": ["t"], "participants": [{"keyspace": "k", "shard": "-"}]},
    ),
    Case(
        "query.StreamHealthResponse",
        "query.StreamHealthResponse",
        query.StreamHealthResponse(
            target=query.Target(
                keyspace="commerce", shard="-80", tablet_type=topodata.TabletType.PRIMARY
            ),
            serving=True,
            primary_term_start_timestamp=1_714_566_000,
            realtime_stats=query.RealtimeStats(
                health_error="",
                replication_lag_seconds=3,
                binlog_players_count=-1,
                filtered_replication_lag_seconds=-2,
                cpu_usage=0.25,
                qps=1234.5,
            ),
            tablet_alias=topodata.TabletAlias(cell="zone1", uid=4_000_000_000),
        ),
        {
            "target": {"keyspace": "commerce", "shard": "-80", "tablet_type": "PRIMARY"},
            "serving": True,
            "primary_term_start_timestamp": "1714566000",
            "realtime_stats": {
                "replication_lag_seconds": 3,
                "binlog_players_count": -1,
                "filtered_replication_lag_seconds": "-2",
                "cpu_usage": 0.25,
                "qps": 1234.5,
            },
            "tablet_alias": {"cell": "zone1", "uid": 4_000_000_000},
        },
    ),
    Case(
        "query.QueryResult-nulls",
        "query.QueryResult",
        query.QueryResult(
            fields=FIELDS,
            rows_affected=2**64 - 1,
            insert_id=5,
            rows=[
                query.Row(lengths=ROW_LENGTHS, values=ROW_VALUES),
                query.Row(lengths=[-1, -1, -1, -1, -1], values=b""),
            ],
            info="ok",
            session_state_changes="x",
            insert_id_changed=True,
        ),
        {
            "fields": FIELDS_DICT,
            "rows_affected": str(2**64 - 1),
            "insert_id": "5",
            "rows": [
                {"lengths": ROW_LENGTHS, "values": b64(ROW_VALUES)},
                {"lengths": [-1, -1, -1, -1, -1]},
            ],
            "info": "ok",
            "session_state_changes": "x",
            "insert_id_changed": True,
        },
    ),
    Case(
        "vtgate.ExecuteRequest",
        "vtgate.ExecuteRequest",
        vtgate.ExecuteRequest(
            caller_id=vtrpc.CallerId(principal="debezium"),
            session=vtgate.Session(autocommit=True, target_string="commerce:-80@primary"),
            query=query.BoundQuery(
                sql="select * from customer where id = :id",
                # One entry: map order on the wire is unspecified, and
                # protobuf's deterministic order is not insertion order.
                bind_variables={
                    "ids": query.BindVariable(
                        type=query.Type.TUPLE,
                        values=[query.Value(type=query.Type.INT64, value=b"2")],
                    ),
                },
            ),
            prepared=True,
        ),
        {
            "caller_id": {"principal": "debezium"},
            "session": {"autocommit": True, "target_string": "commerce:-80@primary"},
            "query": {
                "sql": "select * from customer where id = :id",
                "bind_variables": {
                    "ids": {"type": "TUPLE", "values": [{"type": "INT64", "value": b64(b"2")}]},
                },
            },
            "prepared": True,
        },
    ),
    Case(
        "vtgate.ExecuteResponse",
        "vtgate.ExecuteResponse",
        vtgate.ExecuteResponse(
            error=vtrpc.RpcError(message="boom", code=vtrpc.Code.INVALID_ARGUMENT),
            session=vtgate.Session(in_transaction=True),
            result=LASTPK_RESULT,
        ),
        {
            "error": {"message": "boom", "code": "INVALID_ARGUMENT"},
            "session": {"in_transaction": True},
            "result": LASTPK_RESULT_DICT,
        },
    ),
]

CASES = EVENTS + OTHERS
