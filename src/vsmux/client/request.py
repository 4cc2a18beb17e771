"""Building the ``vtgate.VStreamRequest`` that ``vsmux tail`` sends.

Pure; raises :class:`vsmux.errors.VStreamError` (INVALID_ARGUMENT) for
options that cannot make a valid request, before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsmux.client.checkpoint import CheckpointError, vgtid_from_json
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, topodata, vtgate

__all__ = ["StreamOptions", "build_request", "parse_tablet_type", "start_position"]

_TABLET_TYPES = {
    "primary": topodata.TabletType.PRIMARY,
    "master": topodata.TabletType.PRIMARY,
    "replica": topodata.TabletType.REPLICA,
    "rdonly": topodata.TabletType.RDONLY,
}


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """What to stream: the request-shaping part of ``vsmux tail``'s options.

    ``start`` is ``current``, ``copy`` or a VGtid as JSON text; ``tables``
    and ``filter`` are mutually exclusive (neither means every table).
    """

    keyspace: str
    shard: str = ""
    tables: tuple[str, ...] = ()
    filter: str = ""
    tablet_type: str = "primary"
    start: str = "current"
    heartbeat: int = 0
    stop_on_reshard: bool = False


def parse_tablet_type(name: str) -> topodata.TabletType:
    try:
        return _TABLET_TYPES[name.strip().lower()]
    except KeyError:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"unknown tablet type {name!r}; use one of primary, replica, rdonly",
        ) from None


def start_position(options: StreamOptions) -> binlogdata.VGtid:
    """The VGtid to start from when there is no checkpoint."""
    if options.start in ("current", "copy"):
        gtid = "current" if options.start == "current" else ""
        return binlogdata.VGtid(
            shard_gtids=[
                binlogdata.ShardGtid(keyspace=options.keyspace, shard=options.shard, gtid=gtid)
            ]
        )
    try:
        return vgtid_from_json(options.start)
    except CheckpointError as exc:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"--from must be 'current', 'copy' or a VGtid JSON list: {exc}",
        ) from None


def _rules(options: StreamOptions) -> list[binlogdata.Rule]:
    if options.tables and options.filter:
        raise VStreamError(Code.INVALID_ARGUMENT, "give either --tables or --filter, not both")
    if options.tables:
        return [binlogdata.Rule(match=t, filter=f"select * from `{t}`") for t in options.tables]
    return [binlogdata.Rule(match=options.filter or "/.*")]


def build_request(options: StreamOptions, position: binlogdata.VGtid) -> vtgate.VStreamRequest:
    """The request to stream ``options`` from ``position``."""
    if options.heartbeat < 0:
        raise VStreamError(Code.INVALID_ARGUMENT, "--heartbeat must be 0 (off) or positive")
    return vtgate.VStreamRequest(
        tablet_type=parse_tablet_type(options.tablet_type),
        vgtid=position,
        filter=binlogdata.Filter(rules=_rules(options)),
        flags=vtgate.VStreamFlags(
            heartbeat_interval=options.heartbeat,
            stop_on_reshard=options.stop_on_reshard,
        ),
    )
