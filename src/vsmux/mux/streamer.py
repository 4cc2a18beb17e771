"""One shard's streamer: tablet stream -> whole units -> the sender's channel.

A streamer picks a tablet, opens its vstream from the shard's last delivered
position, groups the batches into units (:mod:`vsmux.core.grouping`), waits
at the skew and chunk gates, and sends whole units into its clone of the
request's channel. A StreamHealth watcher runs beside the stream and
abandons a tablet that turns bad.

Failures follow :class:`vsmux.core.retry.ShardRetryPolicy`. When a failure
that rules a tablet out (it lacks the position) leaves no tablet to try, the
request fails at once with that tablet's error rather than after the
picker's timeout. Before a retry
the streamer waits until everything it already queued is delivered (a
:class:`~vsmux.mux.items.Barrier`), then restarts from the position book, so
nothing is lost or sent twice. A failure after part of a chunked transaction
reached the client is never retried: the request fails, and the client
resumes from its last VGtid.

A PRIMARY stream whose primary goes away with a failover signature
(:func:`vsmux.core.failover.is_failover_signature`), or that finds no
primary in the topology, first waits in the shard's failover buffer
(:mod:`vsmux.mux.failover_wait`), after its queued units are delivered: when
a new serving primary appears it reconnects from its delivered position
without spending a retry; when the buffer does not take it, or the wait
times out, the failure goes to the retry policy as usual, and an error that
then ends the request says how long the shard waited. The sender keeps
sending idle heartbeats meanwhile.

A SHARDS journal that concerns the stream ends it: the streamer waits for the
other participants; the last one swaps the shards (or stops the request for
``stop_on_reshard``) and starts the new shards' streamers. A tablet stream
that opened past its journal (at ``current``, after the reshard) never reads
it; while it has read nothing of the binlog, every tablet heartbeat it hears
asks the journal tracker whether another participant has arrived at a
journal naming it, and if so it arrives too (the heartbeat rule of
:mod:`vsmux.core.journal`). So that it hears them all, it leaves a shared
source's sink nothing until it has read something of the binlog.

Cancellation closes the tablet stream and the health watch before
propagating; the channel clone is closed on every exit.
"""

from __future__ import annotations

import copy

import trio

from vsmux.core.failover import is_failover_signature
from vsmux.core.grouping import TransactionGrouper, Unit, UnitKind
from vsmux.core.journal import StreamAnchor
from vsmux.core.retry import RetryAction, ShardRetryPolicy, ended_unexpectedly
from vsmux.errors import Code, VStreamError
from vsmux.mux.context import RequestContext
from vsmux.mux.failover_wait import RideOutcome
from vsmux.mux.items import Barrier, Item, JournalSwap, Parcel, Stop
from vsmux.mux.malformed import malformed_event
from vsmux.mux.picking_wait import position_lost, watch_health
from vsmux.mux.pushed import sink_for
from vsmux.mux.shard_source import BatchSink, PushingSource, ShardSource
from vsmux.proto import binlogdata, query, topodata
from vsmux.wire import Frame, FrameError

__all__ = ["IMMEDIATE_CALLER", "ShardStreamer"]

#: Who the tablets see as the immediate caller: the gateway itself. Like
#: vtgate without client certificates or static auth (its
#: "unsecure_grpc_client"), the client's self-declared principal is passed on
#: only as the effective caller id, never as the immediate one, which tablets
#: may use for table ACLs.
IMMEDIATE_CALLER = "vsmux"


class ShardStreamer:
    """One shard of one request: picks a tablet, streams from it, retries elsewhere.

    ``run`` loops: pick a tablet (``TabletPicker``), open its vstream from the
    shard's delivered position in the request's position book, watch its
    health beside it, group its events into whole units and put them into the
    request's channel for the sender. A retryable failure waits for the
    units already queued to be delivered (a ``Barrier``), then starts again
    from the new position; a journal hands the shard over to the journal's
    convergence. Cancellation (the request ending, another task's error)
    closes the tablet stream and its health watch before ``run`` returns;
    units not yet in the channel are dropped and the client's position says
    so, since positions advance only on delivery.
    """

    def __init__(
        self,
        ctx: RequestContext,
        start: binlogdata.ShardGtid,
        channel: trio.MemorySendChannel[Item],
    ) -> None:
        self._ctx = ctx
        self._start = start
        self._channel = channel
        self.key = (start.keyspace, start.shard)
        self._labels = ctx.labels(self.key)
        # True while this shard holds the send gate (a chunked transaction is open).
        self._holding_gate = False
        # True once a piece of a chunked transaction went into the channel.
        self._sent_partial = False
        self._health_failure: VStreamError | None = None
        # Alias of the tablet being streamed from (named in the sender's errors).
        self._tablet = ""
        # PRIMARY streams wait out failovers in the gateway's buffer for the shard.
        self._buffered = (
            ctx.resolved.tablet_type == topodata.TabletType.PRIMARY and ctx.failover.enabled
        )
        # Seconds waited in the failover buffer since the stream last got an event.
        self._waited = 0.0

    async def run(self) -> None:
        """Stream until the shard's journal converges; raise VStreamError on failure."""
        ctx = self._ctx
        metrics = ctx.metrics
        metrics.add("VStreamsCreated", self._labels)
        metrics.add("VStreamsCount", self._labels)
        try:
            async with self._channel:
                await self._stream()
        except VStreamError:
            metrics.add("VStreamsEndedWithErrors", self._labels)
            raise
        finally:
            metrics.add("VStreamsCount", self._labels, -1)
            ctx.gate.release(self.key)
            if ctx.skew is not None:
                ctx.skew.remove(self.key)

    async def _stream(self) -> None:
        ctx = self._ctx
        keyspace, shard = self.key
        policy = ShardRetryPolicy(keyspace, shard, ctx.settings)
        while True:
            if self._buffered and not ctx.picker.has_candidates(
                keyspace, shard, policy.ignored_tablets
            ):
                # No primary in the topology: a failover under way. If the buffer
                # does not take the stream, the pick below waits as usual.
                missing = VStreamError(
                    Code.UNAVAILABLE, f"no serving primary for {keyspace}/{shard} in the topology"
                )
                await self._ride_out(missing)
            tablet = await ctx.picker.pick(keyspace, shard, policy.ignored_tablets)
            source = ctx.sources.source_for(tablet)
            self._tablet = tablet.alias
            outcome = await self._attempt(source, policy)
            if isinstance(outcome, Unit):
                await self._journal(outcome)
                return
            if outcome is None:
                outcome = ended_unexpectedly(tablet.alias)
            if self._sent_partial:
                raise VStreamError(
                    outcome.code,
                    f"vstream for {keyspace}/{shard} failed in the middle of a chunked "
                    f"transaction, which cannot be resumed; restart from the last vgtid "
                    f"received: {outcome.message}",
                )
            if policy.consecutive_failures == 0:
                self._waited = 0.0  # the stream worked since the last wait
            # Queued units are delivered before the position is read again; a
            # failover ride already waited for that (nothing is queued since).
            drained = False
            if self._buffered and is_failover_signature(outcome):
                ctx.failover.primary_lost(keyspace, shard, tablet.alias)
                await self._drain()
                drained = True
                ride = await self._ride_out(outcome)
                if ride is RideOutcome.RESUMED:
                    continue  # a new primary serves: reconnect, no retry spent
            decision = policy.failure(outcome, tablet.alias)
            if decision.action is RetryAction.FAIL:
                raise self._with_wait(decision.error)
            if decision.action is RetryAction.RETRY_OTHER_TABLET and not ctx.picker.has_candidates(
                keyspace, shard, policy.ignored_tablets
            ):
                # Waiting cannot bring the position back: report the tablet's own error now.
                raise position_lost(
                    keyspace,
                    shard,
                    ctx.resolved.tablet_type,
                    tablet.alias,
                    outcome,
                    policy.ignored_tablets,
                )
            if not drained:
                await self._drain()
            await trio.sleep(decision.delay)

    async def _ride_out(self, error: VStreamError) -> RideOutcome:
        """Wait in the shard's failover buffer (if it takes the stream); how it ended."""
        ride = await self._ctx.failover.ride_out(self.key[0], self.key[1], error)
        self._waited += ride.waited
        return ride.outcome

    def _with_wait(self, error: VStreamError) -> VStreamError:
        """``error``, saying how long the shard waited for a new primary, if it did."""
        if self._waited <= 0:
            return error
        keyspace, shard = self.key
        return VStreamError(
            error.code,
            f"{error.message} (waited {self._waited:.1f}s in the failover buffer for a new "
            f"serving primary of {keyspace}/{shard})",
        )

    async def _drain(self) -> None:
        """Wait until the sender delivered everything this shard queued."""
        barrier = Barrier(trio.Event())
        await self._channel.send(barrier)
        await barrier.delivered.wait()

    def _request(self, source: ShardSource) -> binlogdata.VStreamRequest:
        ctx = self._ctx
        resolved = ctx.resolved
        flags = resolved.flags
        position = ctx.book.shard_gtid(self.key) or self._start
        options = None
        if flags.stream_keyspace_heartbeats or flags.tables_to_copy:
            options = binlogdata.VStreamOptions(
                internal_tables=["heartbeat"] if flags.stream_keyspace_heartbeats else [],
                tables_to_copy=list(flags.tables_to_copy),
            )
        return binlogdata.VStreamRequest(
            target=query.Target(
                keyspace=self.key[0],
                shard=self.key[1],
                tablet_type=resolved.tablet_type,
                cell=source.tablet.cell,
            ),
            position=position.gtid,
            filter=resolved.filter,
            table_last_p_ks=list(position.table_p_ks),
            options=options,
            effective_caller_id=copy.deepcopy(resolved.caller_id),
            immediate_caller_id=query.VtGateCallerId(username=IMMEDIATE_CALLER),
        )

    async def _attempt(
        self, source: ShardSource, policy: ShardRetryPolicy
    ) -> Unit | VStreamError | None:
        """One tablet stream: the journal unit that ended it, its error, or None (it ended)."""
        ctx = self._ctx
        flags = ctx.resolved.flags
        grouper = TransactionGrouper(
            chunk_size=max(flags.transaction_chunk_size, 0),
            forward_journals=flags.stop_on_reshard or flags.include_reshard_journal_events,
            concerns_stream=lambda journal: ctx.convergence.concerns(journal, self.key),
        )
        request = self._request(source)
        self._health_failure = None
        outcome: Unit | VStreamError | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_health, source, nursery.cancel_scope)
            try:
                outcome = await self._pump(source, request, grouper, policy)
            except VStreamError as err:
                outcome = err
            nursery.cancel_scope.cancel()
        if self._health_failure is not None and outcome is None:
            return self._health_failure
        return outcome

    async def _watch_health(self, source: ShardSource, scope: trio.CancelScope) -> None:
        ctx = self._ctx
        on_healthy = None
        if self._buffered:
            keyspace, shard = self.key
            alias = source.tablet.alias

            def on_healthy(report: query.StreamHealthResponse) -> None:
                term = report.primary_term_start_timestamp
                ctx.failover.primary_seen(keyspace, shard, alias, term)

        try:
            await watch_health(source, ctx.resolved.tablet_type, ctx.settings, on_healthy)
        except VStreamError as err:
            self._health_failure = err
            scope.cancel()

    async def _pump(
        self,
        source: ShardSource,
        request: binlogdata.VStreamRequest,
        grouper: TransactionGrouper,
        policy: ShardRetryPolicy,
    ) -> Unit | None:
        """Stream batches until the tablet ends the stream or a journal ends it.

        The journal is the one the stream read, or, for a stream that has
        read nothing of the binlog yet, the one a tablet heartbeat shows it
        has passed (then a JOURNAL unit without events).
        """
        ctx = self._ctx
        liveness = ctx.liveness
        skew = ctx.skew
        anchor = StreamAnchor(request.position == "current")
        sink = self._sink(grouper, policy, anchor)
        if sink is not None and isinstance(source, PushingSource):
            opened = source.vstream_pushing(request, sink)
        else:
            opened = source.vstream(request)
        async with opened as batches:
            async for batch in batches:
                if not batch:
                    continue
                policy.event_received()
                liveness.touch()
                try:
                    units = grouper.feed(batch)
                except FrameError as err:
                    raise malformed_event(err, source.tablet.alias, self.key) from None
                if skew is not None and grouper.heartbeat is not None:
                    skew.observe(self.key, grouper.heartbeat)
                passed = None
                if not anchor.anchored:
                    passed = self._passed(anchor, batch, grouper)
                if units:
                    journal = await self._send_units(units)
                    if journal is not None:
                        return journal
                if passed is not None:
                    return Unit([], [], UnitKind.JOURNAL, journal=passed)
        return None

    def _passed(
        self, anchor: StreamAnchor, batch: list[Frame], grouper: TransactionGrouper
    ) -> binlogdata.Journal | None:
        """The journal an unanchored stream has passed, if ``batch`` shows it.

        Asked as the batch is read, before any await: only an arrival
        recorded before the stream saw the heartbeat may count.
        """
        anchor.read(batch)
        if anchor.anchored or grouper.heartbeat is None:
            return None
        return self._ctx.convergence.passed(self.key, grouper.heartbeat.header().timestamp)

    def _sink(
        self, grouper: TransactionGrouper, policy: ShardRetryPolicy, anchor: StreamAnchor
    ) -> BatchSink | None:
        """What takes plain batches from a shared source's own task (:mod:`vsmux.mux.pushed`).

        It takes nothing while the stream is unanchored: the streamer must
        see those batches itself, heartbeats included (the heartbeat rule).
        """
        return sink_for(
            self._ctx, self.key, self._labels, self._tablet, self._channel, grouper, policy, anchor
        )

    async def _send_units(self, units: list[Unit]) -> Unit | None:
        """Queue ``units`` for the sender, honouring skew and chunk gates.

        Returns the JOURNAL unit if one ended the stream (it is always last).
        """
        ctx = self._ctx
        skew = ctx.skew
        journal: Unit | None = None
        if units[-1].kind == UnitKind.JOURNAL:
            journal = units.pop()
        if skew is None and not self._holding_gate and units and units[-1].final:
            await self._put(units)  # the common case: whole units only
            return journal
        parcel: list[Unit] = []
        for unit in units:
            if skew is not None:
                last = unit.last()
                if last is not None:
                    skew.observe(self.key, last)
                if not self._holding_gate:
                    if parcel:
                        await self._put(parcel)
                        parcel = []
                    await skew.wait_turn(self.key, self._labels)
            if not unit.final and not self._holding_gate:
                if parcel:
                    await self._put(parcel)
                    parcel = []
                await ctx.gate.acquire(self.key)
                self._holding_gate = True
                ctx.metrics.add("VStreamsTransactionsChunked", self._labels)
            parcel.append(unit)
            if self._holding_gate:
                await self._put(parcel)
                parcel = []
                self._sent_partial = not unit.final
                if unit.final:
                    ctx.gate.release(self.key)
                    self._holding_gate = False
        if parcel:
            await self._put(parcel)
        return journal

    async def _put(self, units: list[Unit]) -> None:
        gate = self._ctx.gate
        if gate.owner is not None and gate.owner != self.key:
            await gate.wait_turn(self.key)
        # No checkpoint between the gate check and the item entering the channel.
        parcel = Parcel(self.key, self._labels, units, self._tablet)
        # A streamer woken by its source after the request ended (its sender
        # gone) stops here, not at a closed channel.
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            # Most puts find room: going on without a yield saves a pass of
            # Trio's scheduler per tablet response. The streamer still waits
            # (a checkpoint) whenever it has nothing to read.
            self._channel.send_nowait(parcel)
        except trio.WouldBlock:
            await self._channel.send(parcel)

    async def _journal(self, unit: Unit) -> None:
        """Stop at a converging journal; the last participant swaps or stops."""
        ctx = self._ctx
        journal = unit.journal
        assert journal is not None
        if unit.frames:
            await self._put([unit])
        if ctx.skew is not None:
            # Stopped here, this shard sends nothing more: with minimize_skew
            # its last event time would hold the other participants back from
            # reaching their journals, and the request would wait for good.
            ctx.skew.remove(self.key)
        convergence = ctx.convergence
        if not convergence.arrive(journal, self.key, unit.written_at):
            await convergence.wait(journal)
            return
        participants = convergence.tracker.participants(journal)
        if ctx.resolved.flags.stop_on_reshard:
            await self._channel.send(Stop())
        else:
            new_shards = convergence.tracker.converge(journal)
            await self._channel.send(JournalSwap(participants, new_shards))
            for shard_gtid in new_shards:
                ctx.start_streamer(shard_gtid, self._channel.clone())
        convergence.release(journal)
