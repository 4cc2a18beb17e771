"""One VStream of a simulated tablet: batches of frames, as a vttablet sends them.

:func:`stream_batches` is an async generator over ``list[Frame]`` responses:

- position ``current``: ``GTID, OTHER`` at once (so a gateway can report a
  position immediately), then every later commit;
- a position the server issued: every entry after it;
- ``""``: the copy phase (see :mod:`.copy`), then every entry after the
  snapshot; a position plus ``table_last_p_ks`` resumes an interrupted copy.

Transactions are ``BEGIN, [FIELD], ROW..., GTID, COMMIT``; DDL and OTHER are
``GTID, DDL|OTHER``; a journal is ``BEGIN, JOURNAL, GTID, COMMIT`` and ends
the stream. A FIELD precedes a table's first ROW on the stream and follows
every schema change. While caught up the stream waits for the next commit
and sends a HEARTBEAT after ``HEARTBEAT_INTERVAL`` of silence. Responses hold
whole transactions up to ``RESPONSE_TARGET_BYTES``; a larger transaction is
split over several responses.

Errors are raised as :class:`VStreamError` without the tablet alias (the
caller adds it, or sends it as a gRPC status). Cancellation simply stops the
generator; it holds no resources.

The simulated tablet shares its event loop with whatever hosts it (the
gateway, in ``vsmux serve`` and ``vsmux demo``), so no step of a stream runs
long: a copy orders and encodes its snapshot in slices (:data:`.copy.PAUSE`),
and a catch-up checkpoints every ``STREAM_SLICE_EVENTS`` events and between
row events it has to decode. It does so whether or not the consumer of its
responses checkpoints in between (the gateway's streamer may take several
responses in one step).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Iterator

import trio

from vsmux.core.quoting import mention, quote
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata
from vsmux.sources._simulated.binlog import EntryKind, LogEntry, ShardLog
from vsmux.sources._simulated.clock import SimClock
from vsmux.sources._simulated.copy import (
    PAUSE,
    RowBound,
    copy_bounds,
    plan_copy,
    restrict_row_event,
)
from vsmux.sources._simulated.filters import TableFilter
from vsmux.sources._simulated.gtid import GtidParseError, GtidSet
from vsmux.sources._simulated.rows import current_time_field, simple_event
from vsmux.wire.frames import Frame

__all__ = [
    "HEARTBEAT_INTERVAL",
    "RESPONSE_TARGET_BYTES",
    "STREAM_SLICE_EVENTS",
    "purged_error",
    "resolve_position",
    "stream_batches",
]

# vttablet's default vstream_packet_size.
RESPONSE_TARGET_BYTES = 250_000
# vttablet sends a heartbeat after this much idle time.
HEARTBEAT_INTERVAL = 0.9
# Events (or entries a filter skips) a stream handles between checkpoints:
# each costs a microsecond or two to filter, queue and stamp, so a stream far
# behind gives the loop back every few milliseconds.
STREAM_SLICE_EVENTS = 2048

_T = binlogdata.VEventType
Event = tuple[int, bytes]


class _Responses:
    """Accumulates events into one response; stamps current_time on flush."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._events: list[Event] = []
        self._size = 0

    def add(self, event: Event) -> bool:
        """Queue ``event``; True once the response is full."""
        self._events.append(event)
        self._size += len(event[1])
        return self._size >= RESPONSE_TARGET_BYTES

    def __bool__(self) -> bool:
        return bool(self._events)

    def flush(self) -> list[Frame]:
        now = self._clock.now_ns()
        stamped = current_time_field(now)
        frames = [Frame(etype, raw + stamped) for etype, raw in self._events]
        self._events, self._size = [], 0
        return frames


def resolve_position(log: ShardLog, position: str) -> int:
    """The seqno a stream resumes after; INVALID_ARGUMENT for a foreign position."""
    try:
        gtids = GtidSet.parse(position)
    except GtidParseError as exc:
        raise VStreamError(
            Code.INVALID_ARGUMENT, f"cannot parse position {quote(position)}: {exc}"
        ) from None
    last = gtids.last_of(log.uuid)
    foreign = sorted(set(gtids.intervals) - {log.uuid})
    if foreign or last < 0 or last > log.last_seqno:
        raise VStreamError(
            Code.INVALID_ARGUMENT,
            f"GTIDSet Mismatch: requested position {mention(position)} is not a position of this "
            f"server (its executed set is {log.position()}); restart from 'current' or a "
            "position this shard issued",
        )
    if last + 1 < log.first_streamable:
        raise purged_error(log, last)
    return last


def purged_error(log: ShardLog, last: int) -> VStreamError:
    """What a vttablet answers for a position whose binlog its MySQL has purged.

    Worded as vttablet relays MySQL 8's error 1236 (code UNKNOWN): the errno
    is what a gateway keys on to try another tablet, and the GTID sets tell
    an operator how far behind the client was. ``last`` is the last seqno the
    client has; the sets are built from it, never from the request's text.
    """
    sent = _bare(log.position(last)) if last > 0 else f"{log.uuid}:"
    first, upto = last + 1, log.first_streamable - 1
    missing = f"{log.uuid}:{first}" if first == upto else f"{log.uuid}:{first}-{upto}"
    return VStreamError(
        Code.UNKNOWN,
        f"stream (at source tablet) error @ {sent}: Cannot replicate because the source "
        "purged required binary logs. Replicate the missing transactions from elsewhere, "
        "or provision a new replica from backup. Consider increasing the source's binary "
        f"log expiration period. The GTID set sent by the replica is '{sent}', and the "
        f"missing transactions are '{missing}' (errno 1236) (sqlstate HY000)",
    )


def _bare(position: str) -> str:
    """A position without its ``MySQL56/`` flavor, as MySQL prints GTID sets."""
    return position.split("/", 1)[1] if "/" in position else position


def _entry_events(
    log: ShardLog,
    entry: LogEntry,
    table_filter: TableFilter,
    seen: dict[str, int],
    bounds: RowBound | None = None,
) -> Iterator[Event]:
    ts = entry.timestamp
    gtid = (int(_T.GTID), entry.gtid)
    if entry.kind in (EntryKind.DDL, EntryKind.OTHER):
        yield gtid
        etype = int(_T.DDL) if entry.kind is EntryKind.DDL else int(_T.OTHER)
        yield etype, entry.statement
        return
    yield int(_T.BEGIN), entry.begin
    if entry.kind is EntryKind.JOURNAL:
        yield int(_T.JOURNAL), entry.journal
    for part in entry.parts:
        if not table_filter.matches(part.table):
            continue
        row_events = part.row_events
        if bounds is not None and part.table in bounds:
            schema = log.schemas[part.table]
            bound = bounds[part.table]
            kept: list[bytes] = []
            for raw in row_events:
                restricted = restrict_row_event(raw, schema, bound)
                if restricted:
                    kept.append(restricted)
                yield PAUSE  # decoding a row event costs up to a millisecond
            row_events = kept
            if not row_events:
                continue
        if seen.get(part.table) != part.version:
            seen[part.table] = part.version
            yield int(_T.FIELD), log.field_event(part.schema, ts)
        for raw in row_events:
            yield int(_T.ROW), raw
    yield gtid
    yield int(_T.COMMIT), entry.commit


def _packed(out: _Responses, events: Iterable[Event]) -> Iterator[list[Frame] | None]:
    """``events`` as responses: each full one as it fills, then the rest.

    None where ``events`` paused (:data:`PAUSE`): the caller checkpoints there.
    """
    for event in events:
        if event is PAUSE:
            yield None
        elif out.add(event):
            yield out.flush()
    if out:
        yield out.flush()


async def stream_batches(
    log: ShardLog, request: binlogdata.VStreamRequest, clock: SimClock
) -> AsyncGenerator[list[Frame], None]:
    """Responses for ``request`` on ``log``'s shard; see the module docstring."""
    table_filter = TableFilter.from_request(request.filter)
    out = _Responses(clock)
    seen: dict[str, int] = {}
    ks, shard = log.keyspace, log.shard
    last_pks = {t.table_name: t for t in request.table_last_p_ks}
    tables_to_copy = list(request.options.tables_to_copy) if request.options else []
    position = request.position
    bounds: RowBound | None = None

    if position == "current":
        cursor = log.last_seqno
        now = clock.seconds()
        out.add((int(_T.GTID), simple_event(_T.GTID, now, ks, shard, gtid=log.position())))
        out.add((int(_T.OTHER), simple_event(_T.OTHER, now, ks, shard)))
        yield out.flush()
    elif position == "":
        plan = plan_copy(log, table_filter, last_pks, tables_to_copy, resuming=False)
        cursor = plan.seqno
        for batch in _packed(out, plan.events(seen, clock.seconds())):
            if batch is None:
                await trio.lowlevel.checkpoint()
            else:
                yield batch
    else:
        cursor = resolve_position(log, position)
        if last_pks:
            # Resume a copy: replay only changes to rows already copied first.
            bounds = copy_bounds(log, table_filter, last_pks, tables_to_copy)

    while True:
        if cursor + 1 < log.first_streamable and cursor < log.last_seqno:
            # The stream fell so far behind (a slow client) that what it has
            # yet to send was purged under it. A MySQL server keeps a file its
            # readers still use; keeping entries for a reader that may never
            # catch up is the unbounded growth the retention bounds prevent.
            raise purged_error(log, cursor)
        journal_sent = False
        work = 0
        # A snapshot of the entries: ones purged meanwhile are still sent.
        for entry in log.entries_after(cursor):
            cursor = entry.seqno
            work += 1
            for event in _entry_events(log, entry, table_filter, seen, bounds):
                if event is PAUSE:
                    work = STREAM_SLICE_EVENTS
                else:
                    work += 1
                    if out.add(event):
                        yield out.flush()
                if work >= STREAM_SLICE_EVENTS:
                    work = 0
                    await trio.lowlevel.checkpoint()
            if entry.kind is EntryKind.JOURNAL:
                journal_sent = True
                break
        if out:
            yield out.flush()
        if journal_sent:
            return
        if bounds is not None:
            if log.last_seqno > cursor:
                continue  # commits arrived while the last response was taken
            # Caught up (checked and planned with no await between): copy what
            # is left from a snapshot taken right now.
            plan = plan_copy(log, table_filter, last_pks, tables_to_copy, resuming=True)
            bounds = None
            cursor = plan.seqno
            for batch in _packed(out, plan.events(seen, clock.seconds())):
                if batch is None:
                    await trio.lowlevel.checkpoint()
                else:
                    yield batch
            continue
        with trio.move_on_after(HEARTBEAT_INTERVAL):
            await log.wait_beyond(cursor)
        if log.last_seqno <= cursor:
            out.add((int(_T.HEARTBEAT), simple_event(_T.HEARTBEAT, clock.seconds(), ks, shard)))
            yield out.flush()
