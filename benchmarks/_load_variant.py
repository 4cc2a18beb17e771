"""``vsmux serve`` with parts of the load fixes turned off (benchmarks only).

Runs the real CLI (``vsmux.cli.main``) after changing this process, so that
``bench_load.py`` can measure what each fix does, one run against another:

- ``--no-batching``: trio-asyncio's own loop driver (one asyncio callback per
  Trio step) instead of ``vsmux.transport._aio_batching``; ``--aio-slice S``:
  the batched driver with another time slice (a large one: every ready
  callback at once);
- ``--no-direct-writes``: every batch goes through the session's asyncio
  writer (no ``send_batch_nowait`` from the Trio side);
- ``--release none|drop|gc|trim``: what a memory release does after sessions
  end: nothing (no release task), only drop grpclib's finished calls, that
  and a full GC pass, or all of that and ``malloc_trim`` (as shipped);
- ``--mallopt MMAP,TRIM``: set glibc's ``M_MMAP_THRESHOLD`` and
  ``M_TRIM_THRESHOLD`` (bytes) before anything is allocated;
- ``--coalesce-bytes N`` / ``--parcels N`` / ``--bridge-batches N``: the
  sender's per-send bounds and the bridge's queue depth;
- ``--streams-per-connection N``: tablet streams per pooled tablet
  connection (``grpc_tablet.STREAMS_PER_CONNECTION``; 4 before 2026-12-02);
  ``--stream-window BYTES``: each tablet stream's HTTP/2 receive window,
  busy tablets' too; ``--busy-tablet-streams N``: streams from which a
  tablet's new connections get the smaller window (a huge N: never, as
  before 2026-12-02);
  ``--connection-window-per-stream K``: a tablet connection's window is K
  times the sum of its stream windows (1 before 2026-12-02);
  ``--grpclib-connect``: streams wait for a connection in grpclib's own
  connect lock (one waiter woken per loop turn) instead of
  ``TabletConnection.ready``;
- ``--trace-tablet-calls FILE``: record every tablet call's timeline
  (started, connection ready, request sent, first reply, end) and every
  tablet connection's connect, written to FILE as JSON every 2 s (see
  :func:`trace_tablet_calls`).

Usage: python benchmarks/_load_variant.py [options] -- --topology FILE --listen ...
(everything after ``--`` goes to ``vsmux serve``).
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def apply(args: argparse.Namespace) -> None:
    if args.mallopt:
        mmap_threshold, trim_threshold = (int(x) for x in args.mallopt.split(","))
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
    import vsmux.server.standalone as standalone

    if args.no_batching:
        import vsmux.transport._loop as loop

        loop.batch_ready_callbacks = lambda: True  # type: ignore[attr-defined]
    if args.no_direct_writes:
        import vsmux.transport._service as gateway

        gateway.send_batch_nowait = lambda stream, bodies: False  # type: ignore[attr-defined]
    if args.aio_slice:
        import vsmux.transport._aio_batching as aio_batching

        aio_batching.SLICE_SECONDS = args.aio_slice  # type: ignore[misc]
    if args.release == "none":

        async def no_release(*_: Any, **__: Any) -> None:
            return None

        standalone.return_memory = no_release  # type: ignore[attr-defined]
    elif args.release != "trim":
        import gc
        import time

        import vsmux.server.memory as memory
        from vsmux.transport import drop_finished_calls

        steps = args.release

        def partial_release(servers: list[Any]) -> Any:
            started = time.perf_counter()
            dropped = sum(drop_finished_calls(s) for s in servers)
            collected = gc.collect() if steps == "gc" else 0
            return memory.Release(dropped, collected, False, time.perf_counter() - started)

        memory.release_memory = partial_release  # type: ignore[assignment]
    if args.coalesce_bytes or args.parcels:
        import vsmux.mux.sender as sender

        if args.coalesce_bytes:
            sender.COALESCE_BYTES = args.coalesce_bytes  # type: ignore[misc]
        if args.parcels:
            sender.MAX_PARCELS_PER_SEND = args.parcels  # type: ignore[misc]
    if (
        args.streams_per_connection
        or args.grpclib_connect
        or args.stream_window
        or args.connection_window_per_stream
        or args.busy_tablet_streams
    ):
        from vsmux.transport import _tablet_client as grpc_tablet

        if args.connection_window_per_stream:
            grpc_tablet.CONNECTION_WINDOW_PER_STREAM = args.connection_window_per_stream  # type: ignore[misc]

        init = grpc_tablet.TabletChannels.__init__
        # connect_timeout, stream window, streams per connection, busy tablet
        # streams, busy stream window
        defaults = list(init.__defaults__ or ())
        if args.streams_per_connection:
            defaults[2] = args.streams_per_connection
        if args.busy_tablet_streams:
            defaults[3] = args.busy_tablet_streams
        if args.stream_window:
            defaults[1] = defaults[4] = args.stream_window
            opener = grpc_tablet.open_tablet_channels.__wrapped__  # type: ignore[attr-defined]
            opener.__defaults__ = (opener.__defaults__[0], args.stream_window)
        init.__defaults__ = tuple(defaults)
        if args.grpclib_connect:

            async def connect_in_the_call(self: Any) -> None:
                return None  # grpclib connects when the call sends its request

            grpc_tablet.TabletConnection.ready = connect_in_the_call  # type: ignore[method-assign]
    if args.trace_tablet_calls:
        trace_tablet_calls(args.trace_tablet_calls)
    if args.bridge_batches:
        import vsmux.transport._bridge as bridge

        defaults = list(bridge.pump_responses.__kwdefaults__ or {})
        if "queue_batches" in defaults:
            bridge.pump_responses.__kwdefaults__["queue_batches"] = args.bridge_batches  # type: ignore[index]


def trace_tablet_calls(path: str) -> None:
    """Record where each tablet call spends its time until its first reply.

    Per call (``calls``): path, address, the connection it was given (and
    whether the call created it), ``time.time()`` instants: started,
    connected (the channel's connection ready, after any wait for its
    connect lock), sent (request written), first, second and last reply,
    end, the failure's type, and replies and bytes received. Per
    connection (``connects``): connect started/ended.
    """
    import asyncio
    import json
    import os
    import threading
    import time

    from grpclib import client as grpc_client

    from vsmux.transport import _tablet_client as grpc_tablet

    calls: list[dict[str, Any]] = []
    connects: list[dict[str, Any]] = []
    by_task: dict[Any, dict[str, Any]] = {}
    channel_ids: dict[int, int] = {}

    def channel_id(channel: Any) -> int:
        return channel_ids.setdefault(id(channel), len(channel_ids))

    acquire = grpc_tablet.TabletChannels.acquire

    def traced_acquire(self: Any, address: str) -> Any:
        known = len(channel_ids)
        connection = acquire(self, address)
        rec = by_task.get(asyncio.current_task())
        if rec is not None:
            rec["channel"] = channel_id(connection.channel)
            rec["new"] = len(channel_ids) > known
        return connection

    call = grpc_tablet.GrpcTabletSource._call

    async def traced_call(self: Any, spec: Any, handoff: Any) -> None:
        rec: dict[str, Any] = {"path": spec.path.rsplit("/", 1)[-1], "address": self._address}
        rec["started"] = time.time()
        calls.append(rec)
        by_task[asyncio.current_task()] = rec
        put = handoff.put_in_asyncio

        async def traced_put(item: Any, weight: int = 0) -> None:
            now = time.time()
            if "first" not in rec:
                rec["first"] = now
            elif "second" not in rec:
                rec["second"] = now
            rec["replies"] = rec.get("replies", 0) + 1
            rec["bytes"] = rec.get("bytes", 0) + weight
            rec["last"] = now
            await put(item, weight)

        handoff.put_in_asyncio = traced_put
        try:
            await call(self, spec, handoff)
        except BaseException as exc:
            rec["failure"] = type(exc).__name__
            raise
        finally:
            rec["end"] = time.time()
            by_task.pop(asyncio.current_task(), None)

    connect = grpc_client.Channel.__connect__

    async def traced_connect(self: Any) -> Any:
        protocol = await connect(self)
        rec = by_task.get(asyncio.current_task())
        if rec is not None and "connected" not in rec:
            rec["connected"] = time.time()
        return protocol

    create = grpc_client.Channel._create_connection

    async def traced_create(self: Any) -> Any:
        rec = {"channel": channel_id(self), "started": time.time()}
        connects.append(rec)
        try:
            return await create(self)
        except BaseException as exc:
            rec["failure"] = type(exc).__name__
            raise
        finally:
            rec["end"] = time.time()

    send_request = grpc_client.Stream.send_request

    async def traced_send_request(self: Any, *, end: bool = False) -> None:
        await send_request(self, end=end)
        rec = by_task.get(asyncio.current_task())
        if rec is not None:
            rec["sent"] = time.time()

    grpc_tablet.TabletChannels.acquire = traced_acquire  # type: ignore[method-assign]
    grpc_tablet.GrpcTabletSource._call = traced_call  # type: ignore[method-assign]
    grpc_client.Channel.__connect__ = traced_connect  # type: ignore[method-assign]
    grpc_client.Channel._create_connection = traced_create  # type: ignore[method-assign]
    grpc_client.Stream.send_request = traced_send_request  # type: ignore[method-assign]

    def dump() -> None:
        while True:
            time.sleep(2.0)
            try:
                data = json.dumps({"calls": list(calls), "connects": list(connects)})
            except RuntimeError:  # a record changed under us: next time
                continue
            with open(path + ".tmp", "w") as f:
                f.write(data)
            os.replace(path + ".tmp", path)

    threading.Thread(target=dump, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, serve_args = argv, []
    if "--" in argv:
        cut = argv.index("--")
        ours, serve_args = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--no-batching", action="store_true")
    p.add_argument("--no-direct-writes", action="store_true")
    p.add_argument("--aio-slice", type=float, default=0.0, help="seconds (0: as shipped)")
    p.add_argument("--release", choices=("none", "drop", "gc", "trim"), default="trim")
    p.add_argument("--mallopt", default="", metavar="MMAP,TRIM")
    p.add_argument("--coalesce-bytes", type=int, default=0)
    p.add_argument("--parcels", type=int, default=0)
    p.add_argument("--bridge-batches", type=int, default=0)
    p.add_argument("--streams-per-connection", type=int, default=0)
    p.add_argument("--grpclib-connect", action="store_true")
    p.add_argument("--stream-window", type=int, default=0, help="bytes per tablet stream")
    p.add_argument("--connection-window-per-stream", type=int, default=0)
    p.add_argument("--busy-tablet-streams", type=int, default=0)
    p.add_argument("--trace-tablet-calls", default="", metavar="FILE")
    args = p.parse_args(ours)
    apply(args)
    from vsmux.cli.main import main as vsmux_main

    result: int = vsmux_main(["serve", *serve_args])
    return result


if __name__ == "__main__":
    sys.exit(main())
