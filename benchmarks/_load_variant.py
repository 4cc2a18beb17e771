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
  sender's per-send bounds and the bridge's queue depth.

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
        standalone.batch_ready_callbacks = lambda: True  # type: ignore[attr-defined]
    if args.no_direct_writes:
        import vsmux.server.gateway as gateway

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

        steps = args.release

        def partial_release(servers: list[Any]) -> Any:
            started = time.perf_counter()
            dropped = sum(memory.drop_finished_calls(s) for s in servers)
            collected = gc.collect() if steps == "gc" else 0
            return memory.Release(dropped, collected, False, time.perf_counter() - started)

        memory.release_memory = partial_release  # type: ignore[assignment]
    if args.coalesce_bytes or args.parcels:
        import vsmux.mux.sender as sender

        if args.coalesce_bytes:
            sender.COALESCE_BYTES = args.coalesce_bytes  # type: ignore[misc]
        if args.parcels:
            sender.MAX_PARCELS_PER_SEND = args.parcels  # type: ignore[misc]
    if args.bridge_batches:
        import vsmux.server.bridge as bridge

        defaults = list(bridge.pump_responses.__kwdefaults__ or {})
        if "queue_batches" in defaults:
            bridge.pump_responses.__kwdefaults__["queue_batches"] = args.bridge_batches  # type: ignore[index]


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
    args = p.parse_args(ours)
    apply(args)
    from vsmux.cli.main import main as vsmux_main

    result: int = vsmux_main(["serve", *serve_args])
    return result


if __name__ == "__main__":
    sys.exit(main())
