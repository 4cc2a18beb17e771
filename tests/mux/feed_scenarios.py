"""Random client scenarios against a gateway that shares feeds, and their oracle.

A :class:`Scenario` describes one run: a simulated keyspace with a workload,
tablet failures and a reshard, and clients that arrive at chosen times, start
at ``current`` or at a VGtid an earlier client received, read at their own
speed, disconnect and reconnect from the last VGtid they received.
:func:`run_scenario` plays it through a gateway with a feed hub, then streams
each client's request again through a gateway without feeds, from the same
start, and returns both, so a test can check that sharing changed nothing a
client can see.

What a client sees is recorded by :class:`Connection` (one VStream call):

- per shard, every unit it received: its position, how it ended, and what it
  carried (each ROW with the FIELD in force for its table on this call, so a
  stale or missing FIELD shows up as a difference; DDL statements; journals);
- the framing: each response holds one unit at most (a large unit continues
  over consecutive responses with nothing else in between);
- anything wrong that cannot be a difference of units (a ROW before any FIELD
  of its table on this call, a BEGIN inside an open transaction) is noted in
  :attr:`Connection.problems`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code
from vsmux.mux import Gateway, open_feed_hub, run_vstream
from vsmux.mux.feed_hub import FeedCounters
from vsmux.proto import binlogdata, topodata, vtgate
from vsmux.sources._simulated import SimulatedCluster
from vsmux.wire import decode_event, split_response
from vsmux.wire.kinds import TRANSACTION_ENDS

T = binlogdata.VEventType
KS = "commerce"
SHARDS = ["-80", "80-"]
RESHARDED = ["-40", "40-80", "80-"]
# Whether a scenario splits -80 (a journal with one participant) or merges
# -40 and 40-80 (two participants, which meet at the journal).
SPLIT = (SHARDS, RESHARDED)
MERGE = (RESHARDED, SHARDS)
PRIMARY = topodata.TabletType.PRIMARY
REPLICA = topodata.TabletType.REPLICA

# What a unit carried, in order: ("row", row event bytes, the fields in force
# for its table), ("ddl", statement) or ("journal", journal bytes).
Payload = tuple[tuple[str, bytes, tuple[bytes, ...]], ...]


@dataclass(frozen=True, slots=True)
class Unit:
    """One whole unit as a client received it."""

    shard: str
    gtid: str
    end: str  # COMMIT, DDL, OTHER or ROLLBACK
    payload: Payload

    def brief(self) -> str:
        return f"{self.shard}@{self.gtid} {self.end} ({len(self.payload)} items)"


_ENDS = frozenset(int(t) for t in TRANSACTION_ENDS) | {int(T.COPY_COMPLETED)}


class Connection:
    """What one VStream call delivered (the ``send`` callback of ``run_vstream``).

    ``delay`` is how long the client takes per response: a slow client.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.units: list[Unit] = []
        #: The VGtid after the last whole unit received. (A large unit may
        #: bring its VGTID in one response and its COMMIT in the next: a
        #: client that stops between them has not received the unit.)
        self.vgtid: binlogdata.VGtid | None = None
        self._unit_vgtid: binlogdata.VGtid | None = None
        #: Every VGtid received, after each unit.
        self.vgtids: list[binlogdata.VGtid] = []
        #: Where forwarded journals were received (shard, position): a VGtid
        #: holding one is past the end of a shard that takes no more writes,
        #: so it cannot be resumed from; later VGtids name the new shards.
        self.journals: set[tuple[str, str]] = set()
        self.responses = 0
        self.problems: list[str] = []
        self._fields: dict[tuple[str, str], tuple[bytes, ...]] = {}
        self._payload: list[tuple[str, bytes, tuple[bytes, ...]]] = []
        self._gtid: str | None = None
        self._in_tx = False
        # The shard of a unit continued from the previous response.
        self._open_shard: str | None = None
        self._offers = 0

    async def __call__(self, bodies: list[bytes]) -> None:
        for body in bodies:
            self.apply_response(body)
            if self.delay:
                await trio.sleep(self.delay)

    def now(self, bodies: list[bytes], /) -> bool:
        """Take ``bodies`` at once (a SendNow), as a connection with room does.

        A slow client never can, and every third offer is refused, as by a
        connection whose window is full: the sender then awaits the write.
        """
        self._offers += 1
        if self.delay or self._offers % 3 == 0:
            return False
        for body in bodies:
            self.apply_response(body)
        return True

    # -- one response -----------------------------------------------------------

    def apply_response(self, body: bytes) -> None:
        self.responses += 1
        events = [decode_event(frame) for frame in split_response(body)]
        if not events:
            self._problem("an empty response")
            return
        self._check_framing(events)
        for event in events:
            self._apply(event)

    def _check_framing(self, events: list[binlogdata.VEvent]) -> None:
        """One unit per response at most; a unit split over responses is contiguous."""
        where = f"response {self.responses}"
        kinds = [int(e.type) for e in events]
        if kinds == [int(T.HEARTBEAT)]:
            if self._open_shard is not None:
                self._problem(f"{where}: a heartbeat inside a unit of {self._open_shard}")
            return
        for i, kind in enumerate(kinds[:-1]):
            if kind in _ENDS:
                self._problem(f"{where}: {T(kind).name} at {i} ends a unit before more events")
        shards = {e.shard for e in events if e.shard}
        if len(shards) > 1:
            self._problem(f"{where}: events of shards {sorted(shards)} in one response")
        shard = next(iter(shards), None)
        if self._open_shard is not None:
            if shard not in (None, self._open_shard):
                self._problem(f"{where}: {shard} inside a unit of {self._open_shard}")
            if kinds[0] == int(T.BEGIN):
                self._problem(f"{where}: a BEGIN continues an unfinished unit")
        self._open_shard = None if kinds[-1] in _ENDS else (shard or self._open_shard)

    def _apply(self, event: binlogdata.VEvent) -> None:
        kind = event.type
        if kind == T.BEGIN:
            if self._in_tx:
                self._problem(f"BEGIN inside an open transaction on {event.shard}")
            self._in_tx = True
            self._payload = []
            self._gtid = None
        elif kind == T.FIELD:
            fe = event.field_event
            assert fe is not None
            self._fields[(event.shard, fe.table_name)] = tuple(bytes(f) for f in fe.fields)
        elif kind == T.ROW:
            re_ = event.row_event
            assert re_ is not None
            fields = self._fields.get((event.shard, re_.table_name))
            if fields is None:
                self._problem(f"ROW of {re_.table_name} on {event.shard} before any FIELD")
                fields = ()
            # Row content only: current_time differs between two streams.
            self._payload.append(("row", bytes(re_), fields))
        elif kind == T.DDL:
            self._payload.append(("ddl", event.statement.encode(), ()))
        elif kind == T.JOURNAL:
            assert event.journal is not None
            self._payload.append(("journal", bytes(event.journal), ()))
        elif kind == T.VGTID:
            assert event.vgtid is not None
            self._unit_vgtid = event.vgtid
            self._gtid = next(
                (sg.gtid for sg in event.vgtid.shard_gtids if sg.shard == event.shard), None
            )
        elif kind in (T.GTID, T.LASTPK):
            self._problem(f"{T(kind).name} reached the client")
        if kind in (T.COMMIT, T.DDL, T.OTHER, T.ROLLBACK):
            if self._gtid is None:
                self._problem(f"{T(kind).name} on {event.shard} without a VGTID before it")
            self.units.append(
                Unit(event.shard, self._gtid or "", T(kind).name, tuple(self._payload))
            )
            assert self._unit_vgtid is not None
            self.vgtid = self._unit_vgtid
            self.vgtids.append(self.vgtid)
            if any(item[0] == "journal" for item in self._payload):
                self.journals.add((event.shard, self._gtid or ""))
            self._in_tx = False
            self._payload = []
            self._gtid = None

    def _problem(self, what: str) -> None:
        self.problems.append(what)

    def resumable(self, vgtid: binlogdata.VGtid | None) -> bool:
        """Whether a client can resume from ``vgtid``, received on this call.

        ``current`` is not a position, and neither is a journal's.
        """
        return vgtid is not None and all(
            sg.gtid != "current" and (sg.shard, sg.gtid) not in self.journals
            for sg in vgtid.shard_gtids
        )


def caught_up(vgtid: binlogdata.VGtid | None, cluster: SimulatedCluster) -> bool:
    """Whether ``vgtid`` is every serving shard's newest position."""
    if vgtid is None:
        return False
    have = {sg.shard: sg.gtid for sg in vgtid.shard_gtids}
    serving = cluster.topology.serving_shards(KS)
    return set(have) == set(serving) and all(have[s] == cluster.position(KS, s) for s in serving)


def current_vgtid() -> binlogdata.VGtid:
    return binlogdata.VGtid(shard_gtids=[binlogdata.ShardGtid(keyspace=KS, gtid="current")])


def request_for(vgtid: binlogdata.VGtid, plan: ClientPlan) -> vtgate.VStreamRequest:
    rules = [binlogdata.Rule(match=plan.tables)] if plan.tables is not None else None
    return vtgate.VStreamRequest(
        tablet_type=REPLICA if plan.replica else PRIMARY,
        vgtid=vgtid,
        filter=binlogdata.Filter(rules=rules) if rules is not None else None,
        flags=vtgate.VStreamFlags(
            include_reshard_journal_events=plan.journals,
            minimize_skew=plan.skew,
            heartbeat_interval=1 if plan.skew else 0,
        ),
    )


# -- scenarios -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """One client: when it comes, where it starts, how fast it reads, when it breaks off.

    ``start`` is None for ``current``, else a fraction choosing one of the
    resumable VGtids earlier clients have received when this one arrives
    (``current`` if there is none yet). ``breaks`` are (seconds connected,
    seconds away) before the last connection, which lasts until caught up.
    ``journals`` asks to see reshard journals; ``tables`` is a filter rule's
    match (None: no filter), so clients with different filters read
    different feeds; ``replica`` streams from the shard's replica instead of
    its primary (through the tablet picker); ``skew`` asks for
    ``minimize_skew`` (and gateway heartbeats every second).
    """

    arrives: float
    start: float | None
    delay: float
    breaks: tuple[tuple[float, float], ...] = ()
    journals: bool = False
    tables: str | None = None
    replica: bool = False
    skew: bool = False


@dataclass(frozen=True, slots=True)
class Failure:
    """A tablet failure: ``events`` after ``at`` seconds, on the n-th serving shard.

    The stream fails with UNAVAILABLE (``mid_transaction``: at a point inside
    a transaction), or with ``ends`` just ends, as a tablet that went away.
    """

    at: float
    shard_index: int
    events: int
    mid_transaction: bool
    replica: bool = False
    ends: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    """One run of a gateway with feeds.

    The cluster's seed and workload (transactions per second, how many, the
    odds of a DDL and of a transaction larger than a small ring), when the
    keyspace is resharded, the clients, the tablet failures, the gateway's
    settings (small share_* bounds make the feeds' edge cases common), and
    whether the reshard splits ``-80`` or merges ``-40`` and ``40-80`` into it.
    """

    seed: int
    rate: float
    transactions: int
    ddl_probability: float
    large_probability: float
    reshard_at: float
    clients: tuple[ClientPlan, ...]
    failures: tuple[Failure, ...]
    settings: GatewaySettings
    merge: bool = False


@dataclass
class ClientRun:
    """One client's connections through the sharing gateway, and its oracle."""

    plan: ClientPlan
    start: binlogdata.VGtid | None = None  # None: started at current
    connections: list[Connection] = field(default_factory=list)
    oracle: Connection | None = None

    def resume_points(self) -> list[binlogdata.VGtid]:
        """The VGtids received that a client can resume from."""
        return [
            vgtid for conn in self.connections for vgtid in conn.vgtids if conn.resumable(vgtid)
        ]


@dataclass
class Outcome:
    """What a run left: each client's calls and oracle, the hub's counters, the cluster."""

    clients: list[ClientRun]
    counters: FeedCounters
    cluster: SimulatedCluster


def clear_of_reshard(at: float, reshard_at: float, margin: float) -> float:
    """``at``, or half a second after the reshard if it is less than ``margin`` before that.

    What the gateway still cannot do (it happens with sharing off too): a
    request resolved just before the reshard whose streams of *every*
    participant of the journal open at ``current`` (or, after a failure
    before their first unit, reopen there) only after the journal start past
    it and wait on the old shards for good. A split's journal has one
    participant, so one such stream is enough; a client arriving at that
    moment can do it to all of a merge's. (When another participant reads
    the journal, a stream that started past it arrives by the heartbeat rule
    of :mod:`vsmux.core.journal`; ``tests/mux/test_session_journal_passed.py``
    and ``tests/mux/test_session_journal.py`` test that, with and without
    sharing.) Arrivals and failures keep clear of that moment.
    """
    if reshard_at - margin <= at < reshard_at + 0.5:
        return reshard_at + 0.5
    return at


# Mock seconds a client's last connection (or an oracle) may take to catch up
# once the workload is over.
CATCH_UP_SECONDS = 900.0
POLL = 0.25


async def _until(condition: Callable[[], bool], limit: float, what: str) -> None:
    for _ in range(math.ceil(limit / POLL)):
        if condition():
            return
        await trio.sleep(POLL)
    raise AssertionError(f"{what}: not within {limit} mock seconds")


async def run_scenario(scenario: Scenario) -> Outcome:
    """Play ``scenario`` with sharing, then each client's request without it."""
    shards, resharded = MERGE if scenario.merge else SPLIT
    cluster = SimulatedCluster.build(
        {KS: shards},
        seed=scenario.seed,
        ddl_probability=scenario.ddl_probability,
        large_probability=scenario.large_probability,
        large_rows=(40, 160),
        tablet_types=("primary", "replica"),
        retention_seconds=1e6,
    )
    runs = [ClientRun(plan) for plan in scenario.clients]
    workload_over = trio.Event()
    journal: binlogdata.Journal | None = None

    async def connect(
        gateway: Gateway,
        plan: ClientPlan,
        vgtid: binlogdata.VGtid,
        conn: Connection,
        connected: float | None,
        what: str,
    ) -> binlogdata.VGtid:
        """One VStream call from ``vgtid``; returns the VGtid to resume from.

        It lasts ``connected`` seconds, None: until caught up after the workload.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_vstream, request_for(vgtid, plan), gateway, conn)
            if connected is None:
                await workload_over.wait()
                await _until(
                    lambda: caught_up(conn.vgtid or vgtid, cluster), CATCH_UP_SECONDS, what
                )
            else:
                await trio.sleep(connected)
                # Only a resumable VGtid can be resumed from: a client at
                # current stays until every shard has told it where, one
                # that got a journal until the VGtid names the new shards.
                await _until(
                    lambda: conn.resumable(conn.vgtid or vgtid),
                    CATCH_UP_SECONDS,
                    f"{what}: a resumable VGtid",
                )
            nursery.cancel_scope.cancel()
        return conn.vgtid or vgtid

    async def client(run: ClientRun, gateway: Gateway, index: int) -> None:
        plan = run.plan
        await trio.sleep(clear_of_reshard(plan.arrives, scenario.reshard_at, 0.5))
        earlier = [v for r in runs[:index] for v in r.resume_points()]
        if plan.start is not None and earlier:
            run.start = earlier[min(int(plan.start * len(earlier)), len(earlier) - 1)]
        vgtid = run.start or current_vgtid()
        for connected, away in plan.breaks:
            conn = Connection(plan.delay)
            run.connections.append(conn)
            vgtid = await connect(gateway, plan, vgtid, conn, connected, f"client {index}")
            await trio.sleep(away)
        conn = Connection(plan.delay)
        run.connections.append(conn)
        await connect(gateway, plan, vgtid, conn, None, f"client {index}")

    async def disturb() -> None:
        """Tablet failures and the reshard, at their times."""
        nonlocal journal
        events: list[tuple[float, Failure | None]] = [
            (clear_of_reshard(f.at, scenario.reshard_at, 3.0), f) for f in scenario.failures
        ]
        events.append((scenario.reshard_at, None))
        now = 0.0
        for at, failure in sorted(events, key=lambda e: e[0]):
            await trio.sleep(max(at - now, 0.0))
            now = at
            if failure is None:
                if journal is None:
                    journal = cluster.reshard(KS, resharded)
                continue
            serving = cluster.topology.serving_shards(KS)
            shard = serving[failure.shard_index % len(serving)]
            faults = cluster.tablet(KS, shard, REPLICA if failure.replica else PRIMARY).faults
            if failure.ends:
                faults.end_after(failure.events)
            else:
                faults.fail_after(
                    failure.events, Code.UNAVAILABLE, mid_transaction=failure.mid_transaction
                )

    settings = scenario.settings
    async with open_feed_hub(cluster, cluster.topology, settings) as hub:
        gateway = Gateway(cluster.topology, hub.sources, settings, feeds=hub)
        async with trio.open_nursery() as nursery:
            for index, run in enumerate(runs):
                nursery.start_soon(client, run, gateway, index)
            async with trio.open_nursery() as work:
                work.start_soon(disturb)
                await cluster.run_workload(scenario.rate, max_transactions=scenario.transactions)
            if journal is None:
                journal = cluster.reshard(KS, resharded)
            # Every new shard gets a transaction, so a client's VGtid names it.
            while any(cluster.position(KS, sg.shard) == sg.gtid for sg in journal.shard_gtids):
                cluster.apply_random_transactions(4, KS)
            for tablet in cluster.tablets():
                tablet.faults.clear()
            workload_over.set()
        counters = hub.counters

    # The oracle: each client's request again, without feeds, from its start.
    plain = Gateway(cluster.topology, cluster)

    async def oracle(run: ClientRun, index: int) -> None:
        start = run.start or _start_of_current(run)
        if start is None:
            return
        conn = run.oracle = Connection()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_vstream, request_for(start, run.plan), plain, conn)
            await _until(
                lambda: caught_up(conn.vgtid or start, cluster),
                CATCH_UP_SECONDS,
                f"oracle of client {index}",
            )
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for index, run in enumerate(runs):
            nursery.start_soon(oracle, run, index)
    return Outcome(runs, counters, cluster)


def _initial_shards(run: ClientRun) -> set[str]:
    """The shards a client's first connection started with (its first VGtid's)."""
    vgtids = run.connections[0].vgtids
    return {sg.shard for sg in vgtids[0].shard_gtids} if vgtids else set()


def _start_of_current(run: ClientRun) -> binlogdata.VGtid | None:
    """Where a client that started at ``current`` started: each shard's first unit."""
    initial = _initial_shards(run)
    first: dict[str, str] = {}
    for unit in run.connections[0].units:
        if unit.shard in initial:
            first.setdefault(unit.shard, unit.gtid)
    if not first:
        return None
    return binlogdata.VGtid(
        shard_gtids=[
            binlogdata.ShardGtid(keyspace=KS, shard=shard, gtid=gtid)
            for shard, gtid in first.items()
        ]
    )


def by_shard(units: list[Unit]) -> dict[str, list[Unit]]:
    out: dict[str, list[Unit]] = {}
    for unit in units:
        out.setdefault(unit.shard, []).append(unit)
    return out


def delivered(run: ClientRun) -> dict[str, list[Unit]]:
    """Per shard, what the client received over all its connections.

    A client that started at ``current`` first gets, per shard, a unit
    without rows at its starting position (not a transaction of the binlog);
    those are left out, after checking they are that.
    """
    units = [u for c in run.connections for u in c.units]
    shards = by_shard(units)
    if run.start is None:
        initial = _initial_shards(run)
        for shard, got in shards.items():
            if shard not in initial:
                continue
            first = got[0]
            assert first.end == "OTHER" and first.payload == (), (
                f"a current start on {shard} begins with {first.brief()}"
            )
            shards[shard] = got[1:]
    return {shard: got for shard, got in shards.items() if got}
