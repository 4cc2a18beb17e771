"""Scripted in-memory tablets for session tests.

A :class:`ScriptedTablet` is a ``ShardSource`` whose vstream answers come from
a script, one list of steps per attempt (a stream opened by the gateway):

- a ``list[Frame]`` is one tablet response (batch);
- a :class:`VStreamError` is raised, as a failing tablet does;
- a ``float`` sleeps that many seconds (Trio time);
- :data:`HANG` sleeps forever.

When an attempt's steps run out the stream ends normally; when the attempts
run out, further streams hang. A :class:`LogTablet` serves a fixed list of
transactions from whatever position it is asked for (see
:func:`log_position`), with optional failures, for retry tests. Every tablet records the
requests it got and how many streams are open, so tests can check that no
stream outlives its request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from dataclasses import field as dc_field

import trio
import trio.lowlevel

from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import Gateway
from vsmux.mux.session import run_vstream
from vsmux.proto import binlogdata, query, topodata, vtgate
from vsmux.topology import KeyspaceInfo, TabletInfo, Topology
from vsmux.wire import Frame, decode_event, frame_of, split_response

T = binlogdata.VEventType
HANG = "hang"
Step = list[Frame] | VStreamError | float | str


def ev(kind: binlogdata.VEventType, **kw: object) -> Frame:
    return frame_of(binlogdata.VEvent(type=kind, **kw))  # type: ignore[arg-type]


def gtid(g: str) -> Frame:
    return ev(T.GTID, gtid=g)


def begin() -> Frame:
    return ev(T.BEGIN)


def commit(ts: int = 0, ct: int = 0) -> Frame:
    return ev(T.COMMIT, timestamp=ts, current_time=ct)


def ddl(statement: str = "alter table t1 add column c int") -> Frame:
    return ev(T.DDL, statement=statement)


def row(table: str = "t1", value: bytes = b"1") -> Frame:
    return ev(
        T.ROW,
        row_event=binlogdata.RowEvent(
            table_name=table,
            row_changes=[binlogdata.RowChange(after=query.Row(lengths=[len(value)], values=value))],
        ),
    )


def field(table: str = "t1") -> Frame:
    return ev(
        T.FIELD,
        field_event=binlogdata.FieldEvent(
            table_name=table, fields=[query.Field(name="id", type=query.Type.INT64)]
        ),
    )


def heartbeat(ts: int = 1, ct: int = 1_000_000_000) -> Frame:
    return ev(T.HEARTBEAT, timestamp=ts, current_time=ct)


def journal(
    jid: int,
    keyspace: str,
    participants: list[str],
    new: list[tuple[str, str]],
    timestamp: int = 0,
) -> Frame:
    return ev(
        T.JOURNAL,
        timestamp=timestamp,
        journal=binlogdata.Journal(
            id=jid,
            migration_type=binlogdata.MigrationType.SHARDS,
            participants=[
                binlogdata.KeyspaceShard(keyspace=keyspace, shard=s) for s in participants
            ],
            shard_gtids=[binlogdata.ShardGtid(keyspace=keyspace, shard=s, gtid=g) for s, g in new],
        ),
    )


def healthy(
    tablet: TabletInfo, tablet_type: topodata.TabletType | None = None, serving: bool = True
) -> query.StreamHealthResponse:
    return query.StreamHealthResponse(
        target=query.Target(
            keyspace=tablet.keyspace,
            shard=tablet.shard,
            tablet_type=tablet.tablet_type if tablet_type is None else tablet_type,
        ),
        serving=serving,
        realtime_stats=query.RealtimeStats(),
    )


# vttablet re-sends its health every 20 s (--health_check_interval) even without
# changes; the gateway counts a minute of silence as a sick tablet.
HEALTH_REPORT_INTERVAL = 20.0


class _Base:
    """Health is controllable: ``set_health(down=..., tablet_type=..., serving=...)``.

    A tablet that is ``down`` fails its health streams and new vstreams with
    UNAVAILABLE; every change re-reports at once, as vttablet does.
    """

    def __init__(self, tablet: TabletInfo) -> None:
        self._tablet = tablet
        self.requests: list[binlogdata.VStreamRequest] = []
        self.open_streams = 0
        self.open_health = 0
        self.down = False
        self.health_type = tablet.tablet_type
        self.serving = True
        self._health_changed = trio.Event()

    def set_health(
        self,
        *,
        down: bool | None = None,
        tablet_type: topodata.TabletType | None = None,
        serving: bool | None = None,
    ) -> None:
        if down is not None:
            self.down = down
        if tablet_type is not None:
            self.health_type = tablet_type
        if serving is not None:
            self.serving = serving
        changed, self._health_changed = self._health_changed, trio.Event()
        changed.set()

    def _check_up(self) -> None:
        if self.down:
            raise VStreamError(Code.UNAVAILABLE, f"tablet {self._tablet.alias}: connection refused")

    @property
    def tablet(self) -> TabletInfo:
        return self._tablet

    @asynccontextmanager
    async def vstream(
        self, request: binlogdata.VStreamRequest
    ) -> AsyncIterator[AsyncIterator[list[Frame]]]:
        self.requests.append(request)
        self._check_up()
        self.open_streams += 1
        try:
            yield self._batches(request)
        finally:
            self.open_streams -= 1

    def _batches(self, request: binlogdata.VStreamRequest) -> AsyncIterator[list[Frame]]:
        raise NotImplementedError

    @asynccontextmanager
    async def stream_health(self) -> AsyncIterator[AsyncIterator[query.StreamHealthResponse]]:
        self.open_health += 1
        try:
            yield self._health()
        finally:
            self.open_health -= 1

    async def _health(self) -> AsyncIterator[query.StreamHealthResponse]:
        while True:  # until the watcher closes it; re-reported like vttablet's
            self._check_up()
            changed = self._health_changed
            yield healthy(self._tablet, self.health_type, self.serving)
            with trio.move_on_after(HEALTH_REPORT_INTERVAL):
                await changed.wait()


class ScriptedTablet(_Base):
    def __init__(self, tablet: TabletInfo, *attempts: list[Step]) -> None:
        super().__init__(tablet)
        self.attempts = list(attempts)

    def add(self, *attempts: list[Step]) -> None:
        self.attempts.extend(attempts)

    async def _batches(self, request: binlogdata.VStreamRequest) -> AsyncIterator[list[Frame]]:
        if not self.attempts:
            await trio.sleep_forever()
        for step in self.attempts.pop(0):
            if isinstance(step, VStreamError):
                raise step
            if isinstance(step, float | int):
                await trio.sleep(step)
            elif step == HANG:
                await trio.sleep_forever()
            else:
                assert isinstance(step, list)
                yield step


def log_position(n: int) -> str:
    """A LogTablet's position after its ``n``-th transaction."""
    return f"MySQL56/00000000-0000-0000-0000-000000000001:1-{n}"


class LogTablet(_Base):
    """Serves transaction ``i`` (0-based) as position ``log_position(i+1)``.

    Any other position (``current``, ``""``) starts at the first transaction.

    ``fail_after[k]`` = n makes the k-th stream fail with UNAVAILABLE after n
    batches; ``split`` sends each transaction as several batches.
    """

    def __init__(
        self,
        tablet: TabletInfo,
        transactions: list[list[Frame]],
        *,
        fail_after: dict[int, int] | None = None,
        split: int = 1,
        pace: float = 0.0,
    ) -> None:
        super().__init__(tablet)
        self.transactions = transactions
        self.fail_after = fail_after or {}
        self.split = split
        self.pace = pace  # transaction i is committed at pace * i (Trio time)
        self.batches_sent = 0

    async def _batches(self, request: binlogdata.VStreamRequest) -> AsyncIterator[list[Frame]]:
        attempt = len(self.requests) - 1
        start = int(request.position.rpartition("-")[2]) if ":1-" in request.position else 0
        budget = self.fail_after.get(attempt)
        sent = 0
        for index in range(start, len(self.transactions)):
            if self.pace:
                await trio.sleep_until(self.pace * index)
            body = self.transactions[index]
            frames = [*body[:-1], gtid(log_position(index + 1)), body[-1]]
            size = max(1, len(frames) // self.split)
            for lo in range(0, len(frames), size):
                if budget is not None and sent >= budget:
                    raise VStreamError(Code.UNAVAILABLE, f"tablet {self.tablet.alias} restarting")
                await trio.lowlevel.checkpoint()
                yield frames[lo : lo + size]
                sent += 1
                self.batches_sent += 1
        await trio.sleep_forever()


@dataclass
class Cluster:
    """A topology plus scripted tablets: a ``SourceDirectory`` for tests."""

    topology: Topology = dc_field(default_factory=lambda: Topology(cell="zone1"))
    tablets: dict[str, _Base] = dc_field(default_factory=dict)
    _uid: int = 100

    def tablet_info(
        self,
        keyspace: str,
        shard: str,
        tablet_type: topodata.TabletType = topodata.TabletType.PRIMARY,
    ) -> TabletInfo:
        self._uid += 1
        info = TabletInfo(keyspace, shard, "zone1", self._uid, tablet_type)
        ks = self.topology.keyspaces.setdefault(keyspace, KeyspaceInfo(keyspace, []))
        if shard not in ks.shards:
            ks.shards.append(shard)
        self.topology.tablets.append(info)
        return info

    def scripted(
        self,
        keyspace: str,
        shard: str,
        *attempts: list[Step],
        tablet_type: topodata.TabletType = topodata.TabletType.PRIMARY,
    ) -> ScriptedTablet:
        tablet = ScriptedTablet(self.tablet_info(keyspace, shard, tablet_type), *attempts)
        self.tablets[tablet.tablet.alias] = tablet
        return tablet

    def log(
        self, keyspace: str, shard: str, transactions: list[list[Frame]], **kw: object
    ) -> LogTablet:
        tablet = LogTablet(self.tablet_info(keyspace, shard), transactions, **kw)  # type: ignore[arg-type]
        self.tablets[tablet.tablet.alias] = tablet
        return tablet

    def source_for(self, tablet: TabletInfo) -> _Base:
        return self.tablets[tablet.alias]

    def retype(self, tablet: _Base, tablet_type: topodata.TabletType) -> None:
        """Give ``tablet`` a new type in the topology and in its health reports."""
        old = tablet.tablet
        new = replace(old, tablet_type=tablet_type)
        tablets = self.topology.tablets
        tablets[tablets.index(old)] = new
        tablet._tablet = new
        tablet.set_health(tablet_type=tablet_type)

    def gateway(self, **settings: object) -> Gateway:
        base = {"retry_backoff_initial": 0.1, "retry_backoff_max": 1.0}
        base.update(settings)
        return Gateway(self.topology, self, GatewaySettings(**base))  # type: ignore[arg-type]

    def open_streams(self) -> int:
        return sum(t.open_streams + t.open_health for t in self.tablets.values())


class Client:
    """Collects what the gateway sends: responses of decoded events."""

    def __init__(self) -> None:
        self.responses: list[list[binlogdata.VEvent]] = []
        self.sizes: list[int] = []
        self.send_times: list[float] = []
        self.block: trio.Event | None = None
        self.received = trio.Event()

    async def __call__(self, bodies: list[bytes]) -> None:
        if self.block is not None:
            await self.block.wait()
        for body in bodies:
            self.sizes.append(len(body))
            self.responses.append([decode_event(f) for f in split_response(body)])
        self.send_times.append(trio.current_time())
        self.received.set()
        self.received = trio.Event()
        await trio.lowlevel.checkpoint()

    @property
    def events(self) -> list[binlogdata.VEvent]:
        return [e for r in self.responses for e in r]

    def types(self) -> list[int]:
        return [int(e.type) for e in self.events]


async def outcome_within(
    seconds: float, req: vtgate.VStreamRequest, gateway: Gateway, client: Client
) -> VStreamError | None:
    """Run ``req`` for at most ``seconds`` (Trio time): the error it ended with, else None.

    None when it ended cleanly or was still running at the deadline (then it
    is cancelled there).
    """
    with trio.move_on_after(seconds):
        try:
            await run_vstream(req, gateway, client)
        except VStreamError as err:
            return err
    return None


def request(
    *shards: tuple[str, str, str],
    tablet_type: topodata.TabletType = topodata.TabletType.PRIMARY,
    **flags: object,
) -> vtgate.VStreamRequest:
    return vtgate.VStreamRequest(
        tablet_type=tablet_type,
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace=k, shard=s, gtid=g) for k, s, g in shards]
        ),
        flags=vtgate.VStreamFlags(**flags),  # type: ignore[arg-type]
    )
