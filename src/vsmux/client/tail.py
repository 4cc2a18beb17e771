"""The ``vsmux tail`` loop: stream, decode, print, checkpoint, reconnect.

For each response the loop feeds the events to an
:class:`~vsmux.client.assembler.Assembler`; for each complete unit it writes
the unit's lines, flushes, and only then stores the unit's VGtid as the
checkpoint. Writing and checkpointing are synchronous with no ``await``
between them, so cancellation can never fall between the two; a crash can,
and then the next run replays from the first unit not checkpointed
(at-least-once at the transaction boundary, never a lost transaction).

Reconnects: UNAVAILABLE (which includes a refused or dropped connection, and
silence for ``IDLE_HEARTBEATS`` heartbeat intervals) reconnects from the last
delivered position after a jittered backoff; a partly received transaction
is dropped and received again. Any other error ends the run with the
server's message and exit status 1. A stream the server ends with OK (e.g. a
reshard with ``--stop-on-reshard``) ends the run with status 0.

Cancellation (``--max-seconds``, Ctrl-C) stops the stream at once; nothing
of an unfinished transaction has been written, and the checkpoint is that of
the last complete one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import trio

from vsmux.client.assembler import Assembler, Unit, UnitKind
from vsmux.client.checkpoint import CheckpointError, CheckpointStore
from vsmux.client.formats import FORMATS, format_unit
from vsmux.client.progress import Progress, summarize_position
from vsmux.client.request import StreamOptions, build_request, start_position
from vsmux.client.retry import Backoff, is_retryable
from vsmux.client.rows import RowDecodeError
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata
from vsmux.transport import Connector, ResponseStream

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "IDLE_HEARTBEATS",
    "PROGRESS_INTERVAL_SECONDS",
    "TailConfig",
    "run_tail",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

# With --heartbeat N the server sends something at least every N seconds; a
# stream silent for this many intervals is treated as a dropped connection.
IDLE_HEARTBEATS = 3
# How often the progress line is printed on stderr.
PROGRESS_INTERVAL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class TailConfig:
    """Everything ``vsmux tail`` was asked to do.

    ``start_given`` tells whether ``stream.start`` came from the user (a
    checkpoint still wins; the user is told). ``max_events`` stops after
    exactly that many lines; a transaction cut short by it is not
    checkpointed, so the next run prints it again in full.
    """

    stream: StreamOptions
    format: str = "json"
    client_id: str = "vsmux-tail"
    start_given: bool = False
    max_events: int | None = None
    max_seconds: float | None = None
    quiet: bool = False
    progress: bool = False
    # --format debezium: fill the transaction block (the connector's
    # provide.transaction.metadata=true).
    transaction_metadata: bool = False


@dataclass(slots=True)
class _Outputs:
    out: TextIO
    err: TextIO
    quiet: bool

    def notice(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.err, flush=True)

    def error(self, message: str) -> None:
        print(f"vsmux tail: {message}", file=self.err, flush=True)


@dataclass(slots=True)
class _Tail:
    config: TailConfig
    connect: Connector
    io: _Outputs
    store: CheckpointStore | None
    position: binlogdata.VGtid
    backoff: Backoff
    wall: Callable[[], float]
    progress: Progress
    written: int = 0
    assembler: Assembler = field(init=False)

    def __post_init__(self) -> None:
        self.assembler = Assembler(self.position)

    async def run(self) -> int:
        while True:
            try:
                request = build_request(self.config.stream, self.position)
                async with self.connect(request) as responses:
                    if await self._consume(responses):
                        return EXIT_OK
                self.io.notice(
                    "vsmux tail: the server ended the stream (reshard with --stop-on-reshard, "
                    f"or the server finished); last position {summarize_position(self.position)}"
                )
                return EXIT_OK
            except VStreamError as exc:
                if not is_retryable(exc.code):
                    self.io.error(f"{exc.code.name}: {exc.message}")
                    return EXIT_USAGE if exc.code == Code.INVALID_ARGUMENT else EXIT_ERROR
                delay = self.backoff.next_delay()
                self.io.notice(
                    f"vsmux tail: {exc.message}; reconnecting in {delay:.1f}s from "
                    f"{summarize_position(self.position)}"
                )
                self.assembler.restart(self.position)
                await trio.sleep(delay)
            except RowDecodeError as exc:
                self.io.error(f"cannot decode a row: {exc}")
                return EXIT_ERROR
            except BrokenPipeError:
                # The reader of our output went away (e.g. `| head`): a normal end.
                return EXIT_OK

    async def _consume(self, responses: ResponseStream) -> bool:
        """Deliver until the stream ends (False) or --max-events is reached (True)."""
        heartbeat = self.config.stream.heartbeat
        idle = heartbeat * IDLE_HEARTBEATS if heartbeat > 0 else math.inf
        while True:
            with trio.move_on_after(idle) as scope:
                response = await responses.receive()
            if scope.cancelled_caught:
                raise VStreamError(
                    Code.UNAVAILABLE,
                    f"nothing received for {idle:g}s although heartbeats were asked "
                    f"every {heartbeat}s",
                )
            if response is None:
                return False
            self.backoff.reset()
            self.progress.received(len(response.events))
            for unit in self.assembler.feed(response.events):
                if not self._deliver(unit):
                    return True

    def _deliver(self, unit: Unit) -> bool:
        """Write the unit, then checkpoint it; False once --max-events is reached."""
        # Write, flush, then checkpoint: never the other way round, and no
        # await in between.
        lines = format_unit(
            self.config.format,
            unit,
            int(self.wall() * 1000),
            transaction_metadata=self.config.transaction_metadata,
        )
        limit = self.config.max_events
        complete = limit is None or self.written + len(lines) <= limit
        if limit is not None and not complete:
            # Cut short: write what fits and leave the unit unchecked, as if
            # the process had stopped halfway through writing it.
            lines = lines[: limit - self.written]
        if lines:
            self.io.out.write("\n".join(lines) + "\n")
            self.io.out.flush()
            self.written += len(lines)
        if not complete:
            return False
        if unit.position is not None and unit.position is not self.position:
            self.position = unit.position
            if self.store is not None:
                self.store.save(self.config.client_id, unit.position)
        self.progress.delivered(
            len(unit.rows), unit.position, unit.timestamp, unit.kind == UnitKind.TRANSACTION
        )
        return self.config.max_events is None or self.written < self.config.max_events


def _initial_position(
    config: TailConfig, store: CheckpointStore | None, io: _Outputs
) -> binlogdata.VGtid:
    saved = store.load(config.client_id) if store is not None else None
    if saved is None:
        return start_position(config.stream)
    keyspaces = sorted({sg.keyspace for sg in saved.shard_gtids})
    if keyspaces != [config.stream.keyspace]:
        raise CheckpointError(
            f"the checkpoint of client id {config.client_id!r} is for keyspace(s) "
            f"{', '.join(keyspaces)}, not {config.stream.keyspace}; "
            "use another --client-id or checkpoint file"
        )
    io.notice(
        f"vsmux tail: resuming client id {config.client_id!r} from its checkpoint "
        f"{summarize_position(saved)}" + (" (--from ignored)" if config.start_given else "")
    )
    return saved


async def _report_progress(tail: _Tail, wall: Callable[[], float]) -> None:
    while True:
        await trio.sleep(PROGRESS_INTERVAL_SECONDS)
        tail.io.notice(tail.progress.line(trio.current_time(), wall()))


async def run_tail(
    config: TailConfig,
    connect: Connector,
    out: TextIO,
    err: TextIO,
    store: CheckpointStore | None = None,
    backoff: Backoff | None = None,
    wall: Callable[[], float] = time.time,
) -> int:
    """Run ``vsmux tail`` until it ends; returns the exit status.

    0: stopped by the server with OK, by ``max_events`` or ``max_seconds``;
    1: an error from the server or an undecodable row; 2: bad options or
    checkpoint. Lines go to ``out``; notices, progress and errors to ``err``.
    ``backoff`` paces reconnects (default: :class:`~vsmux.client.retry.Backoff`).
    """
    io = _Outputs(out, err, config.quiet)
    if config.format not in FORMATS:
        io.error(f"unknown format {config.format!r}; use one of {', '.join(FORMATS)}")
        return EXIT_USAGE
    try:
        position = _initial_position(config, store, io)
        build_request(config.stream, position)  # reject bad options before connecting
    except (VStreamError, CheckpointError) as exc:
        io.error(str(exc))
        return EXIT_USAGE
    tail = _Tail(
        config=config,
        connect=connect,
        io=io,
        store=store,
        position=position,
        backoff=backoff if backoff is not None else Backoff(),
        wall=wall,
        progress=Progress(trio.current_time()),
    )
    status = EXIT_OK
    try:
        async with trio.open_nursery() as nursery:
            if config.progress and not config.quiet:
                nursery.start_soon(_report_progress, tail, wall)
            limit = config.max_seconds if config.max_seconds is not None else math.inf
            with trio.move_on_after(limit):
                status = await tail.run()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The reporter cannot fail, so a group holds the loop's one exception
        # (e.g. KeyboardInterrupt, or stdout closed): raise it as itself.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    return status
