"""Gateway tunables, with the defaults vtgate uses where it has one.

Every bound on a buffer or a wait is here, named, and justified in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GatewaySettings"]


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Every tunable of the gateway: waits, buffer bounds, retries and request limits.

    One frozen instance is built at start-up (``vsmux serve`` fills it from its
    options) and shared by every request through
    :class:`vsmux.mux.api.Gateway`: the Trio layer reads its waits and
    buffer sizes, :mod:`vsmux.core.limits` and :mod:`vsmux.core.admission`
    its request limits. Tests build their own with short timeouts. The comment
    above each field says why its default is what it is; where vtgate has the
    same knob, the default is vtgate's.
    """

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

    # -- Failover buffer (vsmux.core.failover) ----------------------------------------
    # A PRIMARY stream whose primary goes away with a failover signature waits for a
    # new serving primary instead of spending a retry. Defaults are vtgate's buffer
    # flags (--buffer_window, --buffer_max_failover_duration,
    # --buffer_min_time_between_failovers): a planned reparent takes a few seconds,
    # an unplanned one rarely more than twenty.
    failover_buffer_enabled: bool = True
    # Longest one stream waits in the buffer.
    failover_window: float = 10.0
    # Longest one buffering episode lasts; past it every waiting stream retries.
    failover_max_duration: float = 20.0
    # No new buffering this soon after the last one ended or a reparent was seen:
    # a primary that keeps failing must not hold streams again and again.
    failover_min_time_between: float = 60.0
    # Count and log what would be buffered, but let every stream retry at once.
    failover_dry_run: bool = False
    # How often a waiting stream looks for a new serving primary (topology and the
    # shard's tablets' health). Short: this is the pause the client sees.
    failover_poll_interval: float = 0.5

    # -- Shared upstream streams (vsmux.mux.feed_hub) ---------------------------------
    # Requests for the same shard, tablet, filter and options whose positions are
    # close read one tablet stream (a feed) instead of one each. Off per keyspace in
    # the topology file and per request with the metadata "vsmux-share: off".
    share_streams: bool = True
    # A consumer joins a feed where its next transaction is kept, if that is at most
    # this many transactions behind the feed's newest and has been in the feed at most
    # this many seconds; farther behind it streams on its own and is handed to the
    # feed when it reaches that distance.
    share_join_transactions: int = 10_000
    share_join_seconds: float = 60.0
    # Bytes of recent whole transactions each feed keeps for joining consumers; also
    # how far its slowest consumer may fall behind before the feed waits for it.
    # 8 MiB is a few seconds of a busy shard; a transaction larger than this is
    # still kept whole. A feed keeps nothing past the join distance, so a quiet
    # shard's feed holds far less.
    share_ring_bytes: int = 8 * 1024 * 1024
    # Feeds at once over the gateway (each holds up to share_ring_bytes); past it new
    # shard streams stream on their own.
    share_max_feeds: int = 256
    # Longest a feed waits, in total, for one consumer that keeps it from reading on
    # (its backlog is the whole ring); then that consumer is detached to a private
    # stream from its own position. Short: every other consumer waits meanwhile.
    share_straggler_seconds: float = 2.0
    # How long a feed with no consumer left keeps its tablet stream open for one
    # that reconnects (a client restarting, a retry).
    share_linger_seconds: float = 5.0

    # -- Request limits (vsmux.core.limits) ---------------------------------------
    # Checked before any work is done for a request, so one request cannot make the
    # gateway spend unbounded time or memory. Over a limit: INVALID_ARGUMENT naming
    # the field, the limit and the value's size (RESOURCE_EXHAUSTED for the size).

    # Largest request message accepted; the size is read from the gRPC frame
    # header, before the body. 4 MiB is gRPC's usual default receive limit.
    max_request_bytes: int = 4 * 1024 * 1024
    # Fields and list elements in a request, nested ones included. Decoding into
    # the message classes costs a few microseconds of Python per element, so the
    # byte size alone does not bound it (4 MiB of empty strings: 7 s); 50,000 is
    # at most a few tenths of a second, and a 1024-shard VStream needs ~5,000.
    max_request_fields: int = 50_000
    # Keyspace and table names: MySQL's identifier limit is 64 characters, and a
    # keyspace is a MySQL database on its tablets.
    max_name_bytes: int = 64
    # Shard names: key ranges ("80-c0") or names; Vitess sets no limit of its own.
    # 256 holds key ranges of keyspace ids far longer than the 8 or 16 bytes that
    # Vitess's vindexes produce.
    max_shard_name_bytes: int = 256
    # A "/regex" that selects keyspaces (ShardGtid.keyspace) or tables (Rule.match),
    # and a SHOW VITESS_SHARDS LIKE pattern.
    max_pattern_bytes: int = 256
    # One position string. A MySQL56 gtid set is ~40 bytes per server uuid it
    # names; 64 KiB holds well over a thousand, more than any real history.
    max_gtid_bytes: int = 64 * 1024
    # Entries of vgtid.shard_gtids (each one is a stream to a tablet).
    max_shard_gtids: int = 1024
    # Rules of the filter, and the length of each rule's filter SQL.
    max_filter_rules: int = 4096
    max_filter_sql_bytes: int = 64 * 1024

    # -- Admission (vsmux.core.admission) -------------------------------------------
    # Over either limit a new VStream call gets RESOURCE_EXHAUSTED at once.
    # VStream calls one client connection may run at once: 100, the stream limit
    # HTTP/2 servers commonly advertise. A CDC client runs one or a few.
    max_streams_per_connection: int = 100
    # Client connections with a running VStream call. Each call costs a task per
    # shard and its buffers; a few thousand sessions are past what one gateway
    # process serves at any useful rate.
    max_streaming_connections: int = 2000
    # VStream calls running at once over all connections; None: no limit beyond
    # the two above.
    max_streams: int | None = None
    # VStream calls one authenticated user (static-auth username or mTLS common
    # name) may run at once; None: no limit. A CDC consumer runs one or a few per
    # keyspace; a bound keeps one misbehaving consumer from taking the gateway.
    max_streams_per_user: int | None = None
    # New VStream calls started per second over the whole gateway, a token bucket
    # with one second's burst (vsmux.core.ratelimit); None: no bound. Each call
    # costs a resolve and a tablet stream per shard; a client reconnecting in a
    # tight loop would otherwise spend the gateway on starts.
    max_new_streams_per_second: float | None = None
