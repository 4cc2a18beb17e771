"""vtrpc codes as gRPC statuses, and one-line summaries for the session log."""

from __future__ import annotations

from grpclib.const import Status

from vsmux.proto import topodata, vtgate, vtrpc

__all__ = ["grpc_status", "summarize_request"]


def grpc_status(code: vtrpc.Code) -> Status:
    """The gRPC status for a vtrpc code: the same number where gRPC has one.

    vtrpc's two extra codes have no gRPC number: CLUSTER_EVENT (a failover or
    reshard in progress) becomes UNAVAILABLE so clients retry, READ_ONLY
    becomes FAILED_PRECONDITION.
    """
    value = int(code)
    if value == vtrpc.Code.CLUSTER_EVENT:
        return Status.UNAVAILABLE
    if value == vtrpc.Code.READ_ONLY:
        return Status.FAILED_PRECONDITION
    try:
        return Status(value)
    except ValueError:
        return Status.UNKNOWN


def _tablet_type_name(request: vtgate.VStreamRequest) -> str:
    value = int(request.tablet_type)
    try:
        return topodata.TabletType(value).name.lower()
    except ValueError:
        return str(value)


def summarize_request(request: vtgate.VStreamRequest) -> str:
    """``key=value`` words describing a VStream request, for one log line."""
    shards = []
    if request.vgtid is not None:
        for sg in request.vgtid.shard_gtids:
            gtid = sg.gtid if len(sg.gtid) <= 24 else sg.gtid[:21] + "..."
            shards.append(f"{sg.keyspace}/{sg.shard or '*'}@{gtid or 'copy'}")
    flags = request.flags
    flag_words = []
    if flags is not None:
        for name in (
            "minimize_skew",
            "stop_on_reshard",
            "stream_keyspace_heartbeats",
            "include_reshard_journal_events",
            "exclude_keyspace_from_table_name",
        ):
            if getattr(flags, name):
                flag_words.append(name)
        if flags.heartbeat_interval:
            flag_words.append(f"heartbeat={flags.heartbeat_interval}s")
    rules = len(request.filter.rules) if request.filter is not None else 0
    caller = request.caller_id.principal if request.caller_id is not None else ""
    parts = [
        f"tablet_type={_tablet_type_name(request)}",
        f"shards={','.join(shards) or '-'}",
        f"rules={rules}",
    ]
    if flag_words:
        parts.append(f"flags={','.join(flag_words)}")
    if caller:
        parts.append(f"caller={caller}")
    return " ".join(parts)
