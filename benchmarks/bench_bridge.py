"""What one asyncio<->Trio crossing costs under trio-asyncio (wall and CPU).

The gateway's grpclib edges run in asyncio and its sessions in Trio, so every
hand-over between them is a crossing. This measures, per item:

- ``aio_as_trio(noop)``: Trio awaiting an asyncio coroutine (the client write);
- ``trio_as_aio(noop)``: asyncio awaiting a Trio coroutine;
- ``trio_as_aio(channel.send)``: an asyncio producer feeding a Trio consumer
  through a memory channel (the tablet client's hand-over per response);
- ``send_nowait from asyncio``: the same hand-over with a same-thread
  ``send_nowait`` (trio-asyncio runs both loops on one thread), waiting on an
  asyncio Event only when the channel is full;
- ``Handoff asyncio->Trio``: :class:`vsmux.transport._handoff.Handoff` as the
  tablet client uses it (capacity ``RESPONSES_AHEAD``, asyncio ``put``, Trio
  ``get`` per item);
- ``Handoff Trio->asyncio``: the same class as the client bridge uses it
  (capacity ``BRIDGE_QUEUE_BATCHES``, Trio ``put``, asyncio ``get_all``).

Prints a table and writes ``benchmarks/results/bench_bridge.json``.

Usage: python benchmarks/bench_bridge.py [--items 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
import trio_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_info, print_table, write_results

from vsmux.transport._bridge import BRIDGE_QUEUE_BATCHES
from vsmux.transport._handoff import Handoff
from vsmux.transport._tablet_client import RESPONSES_AHEAD

Timing = tuple[float, float]  # (wall us, cpu us) per item


async def _timed(n: int, body: Callable[[], Awaitable[None]]) -> Timing:
    t, c = time.perf_counter(), time.process_time()
    await body()
    return (time.perf_counter() - t) / n * 1e6, (time.process_time() - c) / n * 1e6


async def measure(n: int) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    async with trio_asyncio.open_loop():

        async def aio_noop() -> None:
            pass

        async def trio_noop() -> None:
            pass

        call_aio = trio_asyncio.aio_as_trio(aio_noop)

        async def trio_calls_aio() -> None:
            for _ in range(n):
                await call_aio()

        out["aio_as_trio(noop)"] = await _timed(n, trio_calls_aio)

        call_trio = trio_asyncio.trio_as_aio(trio_noop)

        async def aio_calls_trio() -> None:
            for _ in range(n):
                await call_trio()

        out["trio_as_aio(noop)"] = await _timed(n, trio_asyncio.aio_as_trio(aio_calls_trio))

        # asyncio producer -> Trio consumer, crossing per item.
        send_ch, recv_ch = trio.open_memory_channel[int](1)
        send_crossing = trio_asyncio.trio_as_aio(send_ch.send)

        async def produce_crossing() -> None:
            for i in range(n):
                await send_crossing(i)
            send_ch.close()

        async def consume(ch: trio.MemoryReceiveChannel[int], after: Callable[[], None]) -> None:
            async for _ in ch:
                after()

        async def run_pair(
            producer: Callable[[], Awaitable[None]],
            ch: trio.MemoryReceiveChannel[int],
            after: Callable[[], None],
        ) -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume, ch, after)
                await trio_asyncio.aio_as_trio(producer)()

        out["trio_as_aio(channel.send)"] = await _timed(
            n, lambda: run_pair(produce_crossing, recv_ch, lambda: None)
        )

        # Same hand-over with send_nowait on the shared thread.
        send2, recv2 = trio.open_memory_channel[int](1)
        waiting: list[asyncio.Event] = []

        async def produce_nowait() -> None:
            for i in range(n):
                while True:
                    try:
                        send2.send_nowait(i)
                        break
                    except trio.WouldBlock:
                        space = asyncio.Event()
                        waiting.append(space)
                        await space.wait()
            send2.close()

        def wake() -> None:
            while waiting:
                waiting.pop().set()

        out["send_nowait from asyncio"] = await _timed(
            n, lambda: run_pair(produce_nowait, recv2, wake)
        )

        # The Handoff, asyncio producer -> Trio consumer (the tablet client).
        async def handoff_aio_to_trio() -> None:
            handoff: Handoff[int] = Handoff(RESPONSES_AHEAD)

            async def produce() -> None:
                for i in range(n):
                    await handoff.put_in_asyncio(i)
                handoff.close()

            async def take() -> None:
                while True:
                    try:
                        await handoff.get_in_trio()
                    except trio.EndOfChannel:
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(take)
                await trio_asyncio.aio_as_trio(produce)()

        out["Handoff asyncio->Trio"] = await _timed(n, handoff_aio_to_trio)

        # The Handoff, Trio producer -> asyncio consumer (the client writer).
        async def handoff_trio_to_aio() -> None:
            handoff: Handoff[int] = Handoff(BRIDGE_QUEUE_BATCHES)

            async def take_all() -> None:
                while True:
                    try:
                        await handoff.get_all_in_asyncio()
                    except trio.EndOfChannel:
                        return

            async def produce() -> None:
                for i in range(n):
                    await handoff.put_in_trio(i)
                handoff.close()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                await trio_asyncio.aio_as_trio(take_all)()

        out["Handoff Trio->asyncio"] = await _timed(n, handoff_trio_to_aio)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=5000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    runs = [trio.run(measure, args.items) for _ in range(args.runs)]
    rows = []
    medians: dict[str, dict[str, float]] = {}
    for name in runs[0]:
        walls = sorted(r[name][0] for r in runs)
        cpus = sorted(r[name][1] for r in runs)
        medians[name] = {"wall_us": walls[len(walls) // 2], "cpu_us": cpus[len(cpus) // 2]}
        rows.append([name, medians[name]["wall_us"], medians[name]["cpu_us"]])
    print_table(["crossing", "wall us/item", "CPU us/item"], rows)
    path = write_results(
        "bench_bridge",
        {
            "benchmark": "bench_bridge",
            "machine": machine_info(),
            "config": vars(args),
            "median": medians,
            "runs": [{k: list(v) for k, v in r.items()} for r in runs],
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
