"""Gateway tunables, with the defaults vtgate uses where it has one.

Every bound on a buffer or a wait is here, named, and justified in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GatewaySettings"]


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    # The gateway's own cell: where tablets are looked for when a request names no cells.
    cell: str = "zone1"

    # No event at all (heartbeats included) from any tablet for this long ends the
    # request with UNAVAILABLE. vtgate hard-codes 10 minutes.
    liveness_timeout: float = 600.0

    # minimize_skew: a shard more than this many seconds ahead of the slowest waits.
    max_skew_seconds: float = 2.0
    # ... and a wait longer than this fails the request (CANCELED).
    skew_timeout: float = 600.0

    # Largest encoded response the sender writes. A unit larger than this is split
    # over consecutive responses. Below the 4 MiB default inbound limit of gRPC clients.
    max_response_bytes: int = 2 * 1024 * 1024

    # Whole units (transactions) each streamer may have queued for the sender. Small:
    # a slow client must push back on the tablets rather than grow memory.
    unit_queue_size: int = 8

    # Retries of one shard stream: consecutive failures before giving up, and the
    # jittered exponential backoff between attempts.
    max_consecutive_failures: int = 3
    retry_backoff_initial: float = 0.1
    retry_backoff_max: float = 5.0

    # Tablet choice for non-primary types: health/lag limits, and how long to keep
    # looking when no tablet qualifies.
    max_replication_lag: float = 30.0
    # A health probe that gets no first report within this long counts the tablet as
    # unhealthy, so one hung tablet cannot stall a pick.
    health_probe_timeout: float = 5.0
    # A tablet being streamed from whose health stream stays open but sends no
    # report for this long counts as unhealthy: the shard stream moves on.
    # vttablet re-reports every 20 s (--health_check_interval) even without
    # changes; vtgate's --healthcheck_timeout is this same minute.
    health_report_timeout: float = 60.0
    tablet_pick_retry_interval: float = 30.0
    tablet_pick_timeout: float = 90.0
