"""Field numbers, types and enum values are pinned to Vitess's wire contract.

The expected tables below are written from the Vitess protos themselves
(docs/vitess.md section 9 has the background), not read from our files: a renumbered or retyped
field, a changed enum value, or a new field nobody pinned fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

# Importing the generated modules registers their files in the pool.
from vsmux.proto import (  # noqa: F401
    binlogdata,
    etcdserverpb,
    mvccpb,
    query,
    queryservice,
    topodata,
    vschema,
    vtgate,
    vtgateservice,
    vtrpc,
    vttime,
)
from vsmux.proto.google_proto_descriptor_pool import default_google_proto_descriptor_pool as POOL

# name number type; "repeated" before the type; message/enum types by full name.
MESSAGES: dict[str, str] = {
    "vtgate.VStreamRequest": """
        caller_id 1 vtrpc.CallerID
        tablet_type 2 topodata.TabletType
        vgtid 3 binlogdata.VGtid
        filter 4 binlogdata.Filter
        flags 5 vtgate.VStreamFlags""",
    "vtgate.VStreamResponse": "events 1 repeated binlogdata.VEvent",
    "vtgate.VStreamFlags": """
        minimize_skew 1 bool
        heartbeat_interval 2 uint32
        stop_on_reshard 3 bool
        cells 4 string
        cell_preference 5 string
        tablet_order 6 string
        stream_keyspace_heartbeats 7 bool
        include_reshard_journal_events 8 bool
        tables_to_copy 9 repeated string
        exclude_keyspace_from_table_name 10 bool
        transaction_chunk_size 11 int64""",
    "vtgate.ExecuteRequest": """
        caller_id 1 vtrpc.CallerID
        session 2 vtgate.Session
        query 3 query.BoundQuery
        prepared 8 bool""",
    "vtgate.ExecuteResponse": """
        error 1 vtrpc.RPCError
        session 2 vtgate.Session
        result 3 query.QueryResult""",
    "vtgate.Session": """
        in_transaction 1 bool
        autocommit 4 bool
        target_string 5 string""",
    "binlogdata.VStreamRequest": """
        effective_caller_id 1 vtrpc.CallerID
        immediate_caller_id 2 query.VTGateCallerID
        target 3 query.Target
        position 4 string
        filter 5 binlogdata.Filter
        table_last_p_ks 6 repeated binlogdata.TableLastPK
        options 7 binlogdata.VStreamOptions""",
    "binlogdata.VStreamResponse": "events 1 repeated binlogdata.VEvent",
    "binlogdata.VStreamOptions": """
        internal_tables 1 repeated string
        config_overrides 2 map<string,string>
        tables_to_copy 3 repeated string
        no_timeouts 4 bool
        event_types 5 repeated binlogdata.VEventType""",
    "binlogdata.VEvent": """
        type 1 binlogdata.VEventType
        timestamp 2 int64
        gtid 3 string
        statement 4 string
        row_event 5 binlogdata.RowEvent
        field_event 6 binlogdata.FieldEvent
        vgtid 7 binlogdata.VGtid
        journal 8 binlogdata.Journal
        dml 9 string
        current_time 20 int64
        last_p_k_event 21 binlogdata.LastPKEvent
        keyspace 22 string
        shard 23 string
        throttled 24 bool
        throttled_reason 25 string
        commit_parent 26 int64
        sequence_number 27 int64
        event_gtid 28 string""",
    "binlogdata.VGtid": "shard_gtids 1 repeated binlogdata.ShardGtid",
    "binlogdata.ShardGtid": """
        keyspace 1 string
        shard 2 string
        gtid 3 string
        table_p_ks 4 repeated binlogdata.TableLastPK""",
    "binlogdata.TableLastPK": """
        table_name 1 string
        lastpk 3 query.QueryResult""",
    "binlogdata.LastPKEvent": """
        table_last_p_k 1 binlogdata.TableLastPK
        completed 2 bool""",
    "binlogdata.Filter": """
        rules 1 repeated binlogdata.Rule
        field_event_mode 2 binlogdata.Filter.FieldEventMode
        workflow_type 3 int64
        workflow_name 4 string""",
    "binlogdata.Rule": """
        match 1 string
        filter 2 string""",
    "binlogdata.FieldEvent": """
        table_name 1 string
        fields 2 repeated query.Field
        keyspace 3 string
        shard 4 string
        enum_set_string_values 25 bool
        is_internal_table 26 bool""",
    "binlogdata.RowEvent": """
        table_name 1 string
        row_changes 2 repeated binlogdata.RowChange
        keyspace 3 string
        shard 4 string
        flags 5 uint32
        is_internal_table 6 bool""",
    "binlogdata.RowChange": """
        before 1 query.Row
        after 2 query.Row
        data_columns 3 binlogdata.RowChange.Bitmap
        json_partial_values 4 binlogdata.RowChange.Bitmap""",
    "binlogdata.RowChange.Bitmap": """
        count 1 int64
        cols 2 bytes""",
    "binlogdata.Journal": """
        id 1 int64
        migration_type 2 binlogdata.MigrationType
        tables 3 repeated string
        local_position 4 string
        shard_gtids 5 repeated binlogdata.ShardGtid
        participants 6 repeated binlogdata.KeyspaceShard
        source_workflows 7 repeated string""",
    "binlogdata.KeyspaceShard": """
        keyspace 1 string
        shard 2 string""",
    "query.Target": """
        keyspace 1 string
        shard 2 string
        tablet_type 3 topodata.TabletType
        cell 4 string""",
    "query.VTGateCallerID": """
        username 1 string
        groups 2 repeated string""",
    "query.BoundQuery": """
        sql 1 string
        bind_variables 2 map<string,query.BindVariable>""",
    "query.BindVariable": """
        type 1 query.Type
        value 2 bytes
        values 3 repeated query.Value""",
    "query.Value": """
        type 1 query.Type
        value 2 bytes""",
    "query.Field": """
        name 1 string
        type 2 query.Type
        table 3 string
        org_table 4 string
        database 5 string
        org_name 6 string
        column_length 7 uint32
        charset 8 uint32
        decimals 9 uint32
        flags 10 uint32
        column_type 11 string""",
    "query.Row": """
        lengths 1 repeated sint64
        values 2 bytes""",
    "query.QueryResult": """
        fields 1 repeated query.Field
        rows_affected 2 uint64
        insert_id 3 uint64
        rows 4 repeated query.Row
        info 6 string
        session_state_changes 7 string
        insert_id_changed 8 bool""",
    "query.StreamHealthRequest": "",
    "query.StreamHealthResponse": """
        target 1 query.Target
        serving 2 bool
        primary_term_start_timestamp 3 int64
        realtime_stats 4 query.RealtimeStats
        tablet_alias 5 topodata.TabletAlias""",
    "query.RealtimeStats": """
        health_error 1 string
        replication_lag_seconds 2 uint32
        binlog_players_count 3 int32
        filtered_replication_lag_seconds 4 int64
        cpu_usage 5 double
        qps 6 double""",
    "topodata.TabletAlias": """
        cell 1 string
        uid 2 uint32""",
    "topodata.KeyRange": """
        start 1 bytes
        end 2 bytes""",
    "topodata.Tablet": """
        alias 1 topodata.TabletAlias
        hostname 2 string
        port_map 4 map<string,int32>
        keyspace 5 string
        shard 6 string
        key_range 7 topodata.KeyRange
        type 8 topodata.TabletType
        db_name_override 9 string
        tags 10 map<string,string>
        mysql_hostname 12 string
        mysql_port 13 int32
        primary_term_start_time 14 vttime.Time
        default_conn_collation 16 uint32
        tablet_start_time 17 vttime.Time""",
    "topodata.Shard": """
        primary_alias 1 topodata.TabletAlias
        key_range 2 topodata.KeyRange
        is_primary_serving 7 bool
        primary_term_start_time 8 vttime.Time""",
    "topodata.Keyspace": """
        keyspace_type 5 topodata.KeyspaceType
        base_keyspace 6 string
        snapshot_time 7 vttime.Time
        durability_policy 8 string
        sidecar_db_name 10 string""",
    "topodata.ShardReference": """
        name 1 string
        key_range 2 topodata.KeyRange""",
    "topodata.ShardTabletControl": """
        name 1 string
        key_range 2 topodata.KeyRange
        query_service_disabled 3 bool""",
    "topodata.SrvKeyspace": "partitions 1 repeated topodata.SrvKeyspace.KeyspacePartition",
    "topodata.SrvKeyspace.KeyspacePartition": """
        served_type 1 topodata.TabletType
        shard_references 2 repeated topodata.ShardReference
        shard_tablet_controls 3 repeated topodata.ShardTabletControl""",
    "topodata.CellInfo": """
        server_address 1 string
        root 2 string""",
    "vschema.SrvVSchema": "keyspaces 1 map<string,vschema.Keyspace>",
    "vschema.Keyspace": """
        sharded 1 bool
        vindexes 2 map<string,vschema.Vindex>
        tables 3 map<string,vschema.Table>
        require_explicit_routing 4 bool""",
    "vschema.Vindex": """
        type 1 string
        params 2 map<string,string>
        owner 3 string""",
    "vschema.Table": """
        type 1 string
        column_vindexes 2 repeated vschema.ColumnVindex
        pinned 5 string
        column_list_authoritative 6 bool
        source 7 string""",
    "vschema.ColumnVindex": """
        column 1 string
        name 2 string
        columns 3 repeated string""",
    # etcd's v3 API (api/etcdserverpb/rpc.proto, api/mvccpb/kv.proto): the
    # topology server vsmux reads.
    "mvccpb.KeyValue": """
        key 1 bytes
        create_revision 2 int64
        mod_revision 3 int64
        version 4 int64
        value 5 bytes
        lease 6 int64""",
    "mvccpb.Event": """
        type 1 mvccpb.Event.EventType
        kv 2 mvccpb.KeyValue
        prev_kv 3 mvccpb.KeyValue""",
    "etcdserverpb.ResponseHeader": """
        cluster_id 1 uint64
        member_id 2 uint64
        revision 3 int64
        raft_term 4 uint64""",
    "etcdserverpb.RangeRequest": """
        key 1 bytes
        range_end 2 bytes
        limit 3 int64
        revision 4 int64
        sort_order 5 etcdserverpb.RangeRequest.SortOrder
        sort_target 6 etcdserverpb.RangeRequest.SortTarget
        serializable 7 bool
        keys_only 8 bool
        count_only 9 bool""",
    "etcdserverpb.RangeResponse": """
        header 1 etcdserverpb.ResponseHeader
        kvs 2 repeated mvccpb.KeyValue
        more 3 bool
        count 4 int64""",
    "etcdserverpb.PutRequest": """
        key 1 bytes
        value 2 bytes
        lease 3 int64
        prev_kv 4 bool
        ignore_value 5 bool
        ignore_lease 6 bool""",
    "etcdserverpb.PutResponse": """
        header 1 etcdserverpb.ResponseHeader
        prev_kv 2 mvccpb.KeyValue""",
    "etcdserverpb.DeleteRangeRequest": """
        key 1 bytes
        range_end 2 bytes
        prev_kv 3 bool""",
    "etcdserverpb.DeleteRangeResponse": """
        header 1 etcdserverpb.ResponseHeader
        deleted 2 int64
        prev_kvs 3 repeated mvccpb.KeyValue""",
    "etcdserverpb.WatchRequest": """
        create_request 1 etcdserverpb.WatchCreateRequest
        cancel_request 2 etcdserverpb.WatchCancelRequest
        progress_request 3 etcdserverpb.WatchProgressRequest""",
    "etcdserverpb.WatchCreateRequest": """
        key 1 bytes
        range_end 2 bytes
        start_revision 3 int64
        progress_notify 4 bool
        filters 5 repeated etcdserverpb.WatchCreateRequest.FilterType
        prev_kv 6 bool
        watch_id 7 int64
        fragment 8 bool""",
    "etcdserverpb.WatchCancelRequest": "watch_id 1 int64",
    "etcdserverpb.WatchProgressRequest": "",
    "etcdserverpb.WatchResponse": """
        header 1 etcdserverpb.ResponseHeader
        watch_id 2 int64
        created 3 bool
        canceled 4 bool
        compact_revision 5 int64
        cancel_reason 6 string
        fragment 7 bool
        events 11 repeated mvccpb.Event""",
    "vtrpc.CallerID": """
        principal 1 string
        component 2 string
        subcomponent 3 string
        groups 4 repeated string""",
    "vtrpc.RPCError": """
        message 2 string
        code 3 vtrpc.Code""",
    "vttime.Time": """
        seconds 1 int64
        nanoseconds 2 int32""",
}

ENUMS: dict[str, dict[str, int]] = {
    "binlogdata.VEventType": {
        name: number
        for number, name in enumerate(
            [
                "UNKNOWN",
                "GTID",
                "BEGIN",
                "COMMIT",
                "ROLLBACK",
                "DDL",
                "INSERT",
                "REPLACE",
                "UPDATE",
                "DELETE",
                "SET",
                "OTHER",
                "ROW",
                "FIELD",
                "HEARTBEAT",
                "VGTID",
                "JOURNAL",
                "VERSION",
                "LASTPK",
                "SAVEPOINT",
                "COPY_COMPLETED",
                "PREVIOUS_GTIDS",
                "ROWS_QUERY",
            ]
        )
    },
    "binlogdata.Filter.FieldEventMode": {"ERR_ON_MISMATCH": 0, "BEST_EFFORT": 1},
    "binlogdata.MigrationType": {"TABLES": 0, "SHARDS": 1},
    "topodata.TabletType": {
        "UNKNOWN": 0,
        "PRIMARY": 1,
        "MASTER": 1,
        "REPLICA": 2,
        "RDONLY": 3,
        "BATCH": 3,
        "SPARE": 4,
        "EXPERIMENTAL": 5,
        "BACKUP": 6,
        "RESTORE": 7,
        "DRAINED": 8,
    },
    "topodata.KeyspaceType": {"NORMAL": 0, "SNAPSHOT": 1},
    "mvccpb.Event.EventType": {"PUT": 0, "DELETE": 1},
    "etcdserverpb.RangeRequest.SortOrder": {"NONE": 0, "ASCEND": 1, "DESCEND": 2},
    "etcdserverpb.RangeRequest.SortTarget": {
        "KEY": 0,
        "VERSION": 1,
        "CREATE": 2,
        "MOD": 3,
        "VALUE": 4,
    },
    "etcdserverpb.WatchCreateRequest.FilterType": {"NOPUT": 0, "NODELETE": 1},
    "vtrpc.Code": {
        name: number
        for number, name in enumerate(
            [
                "OK",
                "CANCELED",
                "UNKNOWN",
                "INVALID_ARGUMENT",
                "DEADLINE_EXCEEDED",
                "NOT_FOUND",
                "ALREADY_EXISTS",
                "PERMISSION_DENIED",
                "RESOURCE_EXHAUSTED",
                "FAILED_PRECONDITION",
                "ABORTED",
                "OUT_OF_RANGE",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS",
                "UNAUTHENTICATED",
                "CLUSTER_EVENT",
                "READ_ONLY",
            ]
        )
    },
    "query.Flag": {
        "NONE": 0,
        "ISINTEGRAL": 256,
        "ISUNSIGNED": 512,
        "ISFLOAT": 1024,
        "ISQUOTED": 2048,
        "ISTEXT": 4096,
        "ISBINARY": 8192,
    },
    "query.Type": {
        "NULL_TYPE": 0,
        "INT8": 257,
        "UINT8": 770,
        "INT16": 259,
        "UINT16": 772,
        "INT24": 261,
        "UINT24": 774,
        "INT32": 263,
        "UINT32": 776,
        "INT64": 265,
        "UINT64": 778,
        "FLOAT32": 1035,
        "FLOAT64": 1036,
        "TIMESTAMP": 2061,
        "DATE": 2062,
        "TIME": 2063,
        "DATETIME": 2064,
        "YEAR": 785,
        "DECIMAL": 18,
        "TEXT": 6163,
        "BLOB": 10260,
        "VARCHAR": 6165,
        "VARBINARY": 10262,
        "CHAR": 6167,
        "BINARY": 10264,
        "BIT": 2073,
        "ENUM": 2074,
        "SET": 2075,
        "TUPLE": 28,
        "GEOMETRY": 2077,
        "JSON": 2078,
        "EXPRESSION": 31,
        "HEXNUM": 4128,
        "HEXVAL": 4129,
        "BITNUM": 4130,
        "VECTOR": 2083,
        "RAW": 2084,
        "ROW_TUPLE": 2085,
    },
}

PROTO_FILES = [
    f"{p}.proto"
    for p in (
        "binlogdata",
        "query",
        "topodata",
        "vschema",
        "vtgate",
        "vtrpc",
        "vttime",
        "mvccpb",
        "etcdserverpb",
    )
]

_SCALARS = {
    getattr(FieldDescriptor, f"TYPE_{name.upper()}"): name
    for name in [
        "double",
        "float",
        "int64",
        "uint64",
        "int32",
        "fixed64",
        "fixed32",
        "bool",
        "string",
        "bytes",
        "uint32",
        "sfixed32",
        "sfixed64",
        "sint32",
        "sint64",
    ]
}


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def _type_name(field: Any) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        message = field.message_type
        if message.GetOptions().map_entry:
            key, value = message.fields_by_name["key"], message.fields_by_name["value"]
            return f"map<{_type_name(key)},{_type_name(value)}>"
        return message.full_name  # type: ignore[no-any-return]
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.full_name  # type: ignore[no-any-return]
    return _SCALARS[field.type]


def describe(message_name: str) -> set[tuple[str, int, str]]:
    """(name, number, type) of every field of a message, as our descriptors say."""
    out = set()
    for field in POOL.FindMessageTypeByName(message_name).fields:
        kind = _type_name(field)
        if _is_repeated(field) and not kind.startswith("map<"):
            kind = "repeated " + kind
        out.add((field.name, field.number, kind))
    return out


def expected(message_name: str) -> set[tuple[str, int, str]]:
    out = set()
    for line in MESSAGES[message_name].strip().splitlines():
        name, number, *kind = line.split()
        out.add((name, int(number), " ".join(kind)))
    return out


@pytest.mark.parametrize("message_name", sorted(MESSAGES))
def test_message_fields_are_pinned(message_name: str) -> None:
    assert describe(message_name) == expected(message_name)


@pytest.mark.parametrize("enum_name", sorted(ENUMS))
def test_enum_values_are_pinned(enum_name: str) -> None:
    values = {v.name: v.number for v in POOL.FindEnumTypeByName(enum_name).values}
    assert values == ENUMS[enum_name]


def _all_types(container: Any) -> tuple[set[str], set[str]]:
    messages, enums = set(), set()
    for enum in container.enum_types_by_name.values():
        enums.add(enum.full_name)
    for message in (
        container.message_types_by_name.values()
        if hasattr(container, "message_types_by_name")
        else container.nested_types
    ):
        if message.GetOptions().map_entry:
            continue
        messages.add(message.full_name)
        nested_messages, nested_enums = _all_types(message)
        messages |= nested_messages
        enums |= nested_enums
    return messages, enums


def test_every_message_and_enum_is_pinned() -> None:
    messages: set[str] = set()
    enums: set[str] = set()
    for name in PROTO_FILES:
        m, e = _all_types(POOL.FindFileByName(name))
        messages |= m
        enums |= e
    assert messages == set(MESSAGES)
    assert enums == set(ENUMS)


def test_a_renumbered_field_would_fail() -> None:
    """The comparison is sensitive to a single number."""
    actual = describe("binlogdata.VEvent")
    renumbered = {(n, 29 if n == "event_gtid" else num, k) for n, num, k in actual}
    assert renumbered != expected("binlogdata.VEvent")


@pytest.mark.parametrize(
    ("service", "methods"),
    [
        (
            "vtgateservice.Vitess",
            {
                "VStream": ("vtgate.VStreamRequest", "vtgate.VStreamResponse", True),
                "Execute": ("vtgate.ExecuteRequest", "vtgate.ExecuteResponse", False),
            },
        ),
        (
            "queryservice.Query",
            {
                "VStream": ("binlogdata.VStreamRequest", "binlogdata.VStreamResponse", True),
                "StreamHealth": ("query.StreamHealthRequest", "query.StreamHealthResponse", True),
            },
        ),
    ],
)
def test_service_methods_are_pinned(
    service: str, methods: dict[str, tuple[str, str, bool]]
) -> None:
    descriptor = POOL.FindServiceByName(service)
    actual = {}
    for method in descriptor.methods:
        assert not method.client_streaming
        actual[method.name] = (
            method.input_type.full_name,
            method.output_type.full_name,
            method.server_streaming,
        )
    assert actual == methods


def test_etcd_services_are_pinned() -> None:
    """etcd's method paths and streaming shapes, as its rpc.proto declares them."""
    shapes = {}
    for service in ("etcdserverpb.KV", "etcdserverpb.Watch"):
        for method in POOL.FindServiceByName(service).methods:
            shapes[f"/{service}/{method.name}"] = (
                method.input_type.full_name,
                method.output_type.full_name,
                method.client_streaming,
                method.server_streaming,
            )
    assert shapes == {
        "/etcdserverpb.KV/Range": (
            "etcdserverpb.RangeRequest",
            "etcdserverpb.RangeResponse",
            False,
            False,
        ),
        "/etcdserverpb.KV/Put": (
            "etcdserverpb.PutRequest",
            "etcdserverpb.PutResponse",
            False,
            False,
        ),
        "/etcdserverpb.KV/DeleteRange": (
            "etcdserverpb.DeleteRangeRequest",
            "etcdserverpb.DeleteRangeResponse",
            False,
            False,
        ),
        "/etcdserverpb.Watch/Watch": (
            "etcdserverpb.WatchRequest",
            "etcdserverpb.WatchResponse",
            True,
            True,
        ),
    }


# Enums that upstream declares inside a message: the full name (which
# reflection clients such as grpcurl show and resolve) includes the message.
NESTED_ENUMS = {
    "binlogdata.Filter.FieldEventMode": "binlogdata.Filter",
    "mvccpb.Event.EventType": "mvccpb.Event",
    "etcdserverpb.WatchCreateRequest.FilterType": "etcdserverpb.WatchCreateRequest",
}


@pytest.mark.parametrize(("enum_name", "parent"), sorted(NESTED_ENUMS.items()))
def test_nested_enums_are_nested(enum_name: str, parent: str) -> None:
    enum = POOL.FindEnumTypeByName(enum_name)
    assert enum.full_name == enum_name
    assert enum.containing_type is not None
    assert enum.containing_type.full_name == parent
    top_level = enum_name.split(".", 1)[0] + "." + enum.name
    with pytest.raises(KeyError):
        POOL.FindEnumTypeByName(top_level)


def test_filter_field_event_mode_as_reflection_serves_it() -> None:
    """The descriptors the gateway's reflection service answers from agree."""
    from vsmux.transport._health import reflection_pool

    pool = reflection_pool()
    field = pool.FindMessageTypeByName("binlogdata.Filter").fields_by_name["field_event_mode"]
    assert field.number == 2
    assert field.enum_type.full_name == "binlogdata.Filter.FieldEventMode"
    assert {v.name: v.number for v in field.enum_type.values} == {
        "ERR_ON_MISMATCH": 0,
        "BEST_EFFORT": 1,
    }
    with pytest.raises(KeyError):
        pool.FindEnumTypeByName("binlogdata.FieldEventMode")
