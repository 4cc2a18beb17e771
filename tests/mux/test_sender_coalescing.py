"""The sender coalesces queued parcels into one client send, keeping every ordering rule.

Each response (body) holds one unit; a send carries many responses.
"""

from __future__ import annotations

import trio

from tests.mux.scripted import T, begin, commit, ev, row
from vsmux.core.grouping import Unit
from vsmux.core.metrics import Metrics
from vsmux.core.positions import PositionBook
from vsmux.mux.items import Barrier, Item, JournalSwap, Parcel, Stop
from vsmux.mux.sender import COALESCE_BYTES, MAX_PARCELS_PER_SEND, Sender
from vsmux.proto import binlogdata
from vsmux.wire import decode_event, pack_responses, split_response

SHARDS = ["-40", "40-80", "80-"]


def book(shards: list[str] = SHARDS) -> PositionBook:
    return PositionBook(
        binlogdata.ShardGtid(keyspace="ks", shard=s, gtid="MySQL56/x:1") for s in shards
    )


def parcel(shard: str, n: int, rows: int = 2) -> Parcel:
    """One shard's transaction number ``n``: BEGIN, ROWs, GTID, COMMIT."""
    frames = [begin(), *(row(f"t{n}", b"%d" % i) for i in range(rows))]
    frames += [ev(T.GTID, gtid=f"MySQL56/{shard}:1-{n}", keyspace="ks", shard=shard), commit()]
    return Parcel(("ks", shard), ("ks", shard, "PRIMARY"), [Unit(frames, [rows + 1])], "t1")


class Recorder:
    """A client: every ``send`` call's decoded responses, and what was true at the call."""

    def __init__(self) -> None:
        self.calls: list[list[list[binlogdata.VEvent]]] = []
        self.bodies: list[list[bytes]] = []
        self.times: list[float] = []
        self.on_call: list[object] = []
        self.probe: object = None
        self.gate: trio.Event | None = None

    async def __call__(self, bodies: list[bytes]) -> None:
        self.bodies.append(bodies)
        self.calls.append([[decode_event(f) for f in split_response(b)] for b in bodies])
        self.times.append(trio.current_time())
        self.on_call.append(self.probe() if callable(self.probe) else None)
        if self.gate is not None:
            await self.gate.wait()
        await trio.lowlevel.checkpoint()

    def events(self, call: int) -> list[binlogdata.VEvent]:
        return [e for body in self.calls[call] for e in body]


async def run_sender(
    items: list[Item],
    client: Recorder,
    *,
    positions: PositionBook | None = None,
    max_bytes: int = 1 << 20,
    interval: float = 0.0,
    rename: bool = True,
    metrics: Metrics | None = None,
) -> Sender:
    """Queue ``items``, close the channel, and run a sender over it to the end."""
    send_channel, receive_channel = trio.open_memory_channel[Item](len(items) + 1)
    async with send_channel:
        for item in items:
            send_channel.send_nowait(item)
    sender = Sender(
        positions if positions is not None else book(),
        client,
        metrics if metrics is not None else Metrics(),
        max_response_bytes=max_bytes,
        heartbeat_interval=interval,
        rename_tables=rename,
    )
    await sender.run(receive_channel)
    return sender


def transactions(events: list[binlogdata.VEvent]) -> list[tuple[str, list[int]]]:
    """(shard, types) per transaction, cut at COMMIT: proves contiguity."""
    out: list[tuple[str, list[int]]] = []
    current: list[int] = []
    shard = ""
    for event in events:
        current.append(int(event.type))
        if event.type == T.VGTID:
            shard = event.shard
        if event.type == T.COMMIT:
            out.append((shard, current))
            current = []
    assert current == []
    return out


async def test_queued_parcels_leave_in_one_send_in_order() -> None:
    items: list[Item] = [parcel(s, n) for n in range(1, 4) for s in SHARDS]
    client = Recorder()
    metrics = Metrics()
    await run_sender(items, client, metrics=metrics)
    assert len(client.calls) == 1
    # One response per transaction, all in one send.
    assert [len(transactions(body)) for body in client.calls[0]] == [1] * 9
    events = client.events(0)
    assert metrics.total("VStreamsEventsStreamed") == len(events) == 9 * 5
    tx = transactions(events)
    assert [shard for shard, _ in tx] == SHARDS * 3
    assert all(types == [T.BEGIN, T.ROW, T.ROW, T.VGTID, T.COMMIT] for _, types in tx)
    # Tables are renamed while packing; the last VGTID carries every shard's last gtid.
    assert {e.row_event.table_name for e in events if e.row_event} == {"ks.t1", "ks.t2", "ks.t3"}
    last = [e for e in events if e.type == T.VGTID][-1]
    assert last.vgtid is not None
    assert [sg.gtid for sg in last.vgtid.shard_gtids] == [f"MySQL56/{s}:1-3" for s in SHARDS]


async def test_exclude_keyspace_leaves_names_alone() -> None:
    client = Recorder()
    await run_sender([parcel("-40", 1)], client, rename=False)
    assert {e.row_event.table_name for e in client.events(0) if e.row_event} == {"t1"}


def several_units(shard: str, first: int, count: int) -> Parcel:
    """One parcel holding ``count`` transactions (as one tablet response may)."""
    units = [unit for n in range(first, first + count) for unit in parcel(shard, n).units]
    return Parcel(("ks", shard), ("ks", shard, "PRIMARY"), units, "t1")


async def test_units_of_one_parcel_get_a_response_each() -> None:
    client = Recorder()
    await run_sender([several_units("-40", 1, 3), several_units("80-", 1, 2)], client)
    assert len(client.calls) == 1
    shards = [[shard for shard, _ in transactions(body)] for body in client.calls[0]]
    assert shards == [["-40"], ["-40"], ["-40"], ["80-"], ["80-"]]
    # Each response ends at its unit's COMMIT, with its VGTID right before it.
    assert all([e.type for e in body][-2:] == [T.VGTID, T.COMMIT] for body in client.calls[0])


async def test_a_unit_too_big_for_one_response_continues_in_the_next_ones() -> None:
    one = len(b"".join(pack_responses(parcel("-40", 1).units[0].frames, 1 << 20, "ks")))
    big = parcel("-40", 2, rows=24)
    items: list[Item] = [parcel("-40", 1), big, parcel("80-", 1)]
    client = Recorder()
    limit = 2 * one  # room for one small transaction (its VGTID is larger than the GTID)
    await run_sender(items, client, max_bytes=limit)
    bodies = client.calls[0]
    assert all(len(b) <= limit for b in client.bodies[0])
    # The small ones alone; the big one over consecutive responses of its own.
    assert len(transactions(bodies[0])) == 1 and len(transactions(bodies[-1])) == 1
    middle = [e for body in bodies[1:-1] for e in body]
    assert len(bodies) > 3
    assert [types for _, types in transactions(middle)] == [
        [T.BEGIN, *[T.ROW] * 24, T.VGTID, T.COMMIT]
    ]
    assert all(T.COMMIT not in [e.type for e in body] for body in bodies[1:-2])


async def test_a_send_takes_at_most_the_parcel_cap() -> None:
    count = MAX_PARCELS_PER_SEND + 5
    items: list[Item] = [parcel("-40", n, rows=0) for n in range(1, count + 1)]
    client = Recorder()
    await run_sender(items, client)
    per_call = [len(transactions(client.events(c))) for c in range(len(client.calls))]
    assert per_call == [MAX_PARCELS_PER_SEND, 5]


async def test_a_send_stops_gathering_at_the_byte_budget() -> None:
    def big(n: int) -> Parcel:
        frames = [begin(), row("t", b"x" * (COALESCE_BYTES // 3)), commit()]
        return Parcel(("ks", "-40"), ("ks", "-40", "PRIMARY"), [Unit(frames, [])], "t1")

    items: list[Item] = [big(n) for n in range(5)]
    client = Recorder()
    await run_sender(items, client, max_bytes=1 << 24)  # responses never fill
    # The third parcel crosses the budget: it goes, and the send leaves.
    per_call = [len([e for e in client.events(c) if e.type == T.COMMIT]) for c in range(2)]
    assert per_call == [3, 2]


async def test_a_barrier_is_set_only_after_what_precedes_it_was_sent() -> None:
    barrier = Barrier(trio.Event())
    client = Recorder()
    client.probe = barrier.delivered.is_set
    items: list[Item] = [parcel("-40", 1), parcel("40-80", 1), barrier, parcel("80-", 1)]
    await run_sender(items, client)
    assert barrier.delivered.is_set()
    # Both parcels before the barrier went in the first call, before it was set;
    # the one after it in a second call.
    assert client.on_call == [False, True]
    assert [s for s, _ in transactions(client.events(0))] == ["-40", "40-80"]
    assert [s for s, _ in transactions(client.events(1))] == ["80-"]


async def test_a_barrier_waits_for_a_blocked_send() -> None:
    barrier = Barrier(trio.Event())
    client = Recorder()
    client.gate = trio.Event()
    send_channel, receive_channel = trio.open_memory_channel[Item](8)
    sender = Sender(book(), client, Metrics(), max_response_bytes=1 << 20, heartbeat_interval=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.run, receive_channel)
        send_channel.send_nowait(parcel("-40", 1))
        send_channel.send_nowait(barrier)
        await trio.testing.wait_all_tasks_blocked()
        assert len(client.calls) == 1
        assert not barrier.delivered.is_set()  # the client has not taken it yet
        client.gate.set()
        await barrier.delivered.wait()
        await send_channel.aclose()
    assert len(client.calls) == 1


async def test_journal_swap_applies_after_earlier_parcels_were_sent() -> None:
    positions = book(["-80", "80-"])
    new = [binlogdata.ShardGtid(keyspace="ks", shard="-40", gtid="MySQL56/n:1")]
    items: list[Item] = [
        parcel("-80", 1),
        JournalSwap([("ks", "-80")], new),
        parcel("-40", 2),
    ]
    client = Recorder()
    client.probe = lambda: positions.keys()
    await run_sender(items, client, positions=positions)
    assert client.on_call == [[("ks", "-80"), ("ks", "80-")], [("ks", "80-"), ("ks", "-40")]]
    first = next(e for e in client.events(0) if e.type == T.VGTID)
    second = next(e for e in client.events(1) if e.type == T.VGTID)
    assert first.vgtid is not None and second.vgtid is not None
    assert [sg.shard for sg in first.vgtid.shard_gtids] == ["-80", "80-"]
    assert [sg.shard for sg in second.vgtid.shard_gtids] == ["80-", "-40"]


async def test_stop_sends_what_precedes_it_and_nothing_after() -> None:
    items: list[Item] = [parcel("-40", 1), parcel("40-80", 1), Stop(), parcel("80-", 1)]
    client = Recorder()
    await run_sender(items, client)
    assert len(client.calls) == 1
    assert [s for s, _ in transactions(client.events(0))] == ["-40", "40-80"]


async def test_heartbeat_timer_restarts_at_the_coalesced_send(
    autojump_clock: trio.abc.Clock,
) -> None:
    client = Recorder()
    send_channel, receive_channel = trio.open_memory_channel[Item](8)
    sender = Sender(book(), client, Metrics(), max_response_bytes=1 << 20, heartbeat_interval=2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.run, receive_channel)
        await trio.sleep(1.5)
        send_channel.send_nowait(parcel("-40", 1))
        send_channel.send_nowait(parcel("40-80", 1))
        await trio.sleep(4.0)  # until 5.5
        await send_channel.aclose()
    assert client.times == [1.5, 3.5, 5.5]
    assert [len(transactions(client.events(0))), *(len(c) for c in client.calls[1:])] == [2, 1, 1]
    assert [e.type for e in client.events(1)] == [T.HEARTBEAT]
    assert [len(c) for c in client.calls] == [2, 1, 1]  # one response per unit
