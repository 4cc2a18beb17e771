"""One-line summaries of VStream requests for the session log."""

from __future__ import annotations

import re

from vsmux.core.quoting import quote
from vsmux.proto import topodata, vtgate

__all__ = ["summarize_request"]


def _tablet_type_name(request: vtgate.VStreamRequest) -> str:
    value = int(request.tablet_type)
    try:
        name = topodata.TabletType(value).name
    except ValueError:
        return str(value)
    # betterproto names a value outside the enum "~UNKNOWN": show the number.
    return name.lower() if name and name.isidentifier() else str(value)


# How much of each client-supplied value, and how many shards, a summary shows.
_SUMMARY_TEXT_BYTES = 64
_SUMMARY_GTID_BYTES = 24
_SUMMARY_SHARDS = 8
# Values shown without quotes: names, key ranges and simple positions.
_PLAIN = re.compile(r"[A-Za-z0-9_.:/-]+")


def _word(value: str, limit: int = _SUMMARY_TEXT_BYTES) -> str:
    """A client value as part of a log word: escaped, cut, without quotes when plain."""
    quoted = quote(value, limit)
    if not quoted.endswith("'"):  # cut: keep the mark, not the size (the line stays short)
        return quoted.rpartition("'... (")[0] + "'..."
    plain = quoted[1:-1]
    if plain == value and _PLAIN.fullmatch(value):
        return plain
    return quoted


def summarize_request(request: vtgate.VStreamRequest) -> str:
    """``key=value`` words describing a VStream request, for one log line.

    Never raises, whatever the request holds: a log line must not fail a call.
    Every client-supplied value is escaped and cut (:func:`vsmux.core.quoting.quote`).
    """
    try:
        return _summarize(request)
    except Exception as exc:  # a summary is best effort; the request itself was checked
        return f"(request not summarized: {type(exc).__name__})"


def _summarize(request: vtgate.VStreamRequest) -> str:
    shards = []
    entries = request.vgtid.shard_gtids if request.vgtid is not None else []
    for sg in entries[:_SUMMARY_SHARDS]:
        gtid = _word(sg.gtid, _SUMMARY_GTID_BYTES) if sg.gtid else "copy"
        shards.append(f"{_word(sg.keyspace)}/{_word(sg.shard) if sg.shard else '*'}@{gtid}")
    if len(entries) > _SUMMARY_SHARDS:
        shards.append(f"+{len(entries) - _SUMMARY_SHARDS} more")
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
            flag_words.append(f"heartbeat={int(flags.heartbeat_interval)}s")
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
        parts.append(f"caller={_word(caller)}")
    return " ".join(parts)
