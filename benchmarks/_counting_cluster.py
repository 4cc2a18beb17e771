"""``vsmux cluster`` that counts the tablet calls it serves (benchmarks only).

Runs the real CLI (``vsmux.cli.main``, command ``cluster``) after wrapping
the simulated tablets' gRPC service so that every ``VStream`` and
``StreamHealth`` call is counted, per tablet, as it starts and as it ends.
The counts are written as JSON to ``--counts FILE`` (replaced atomically)
whenever one changes::

    {"vstream_opened": 12, "vstream_open": 4, "health_opened": 4, "health_open": 4,
     "vstream_responses": 5120, "vstream_events": 40960,
     "vstream_opened_by_tablet": {"zone1-0000000100": 3, ...}}

so a benchmark can tell how many tablet streams a gateway opened, from the
tablets' side, without touching the gateway. A call is counted when the
tablet starts serving it (after the request arrived). ``vstream_responses``
and ``vstream_events`` count what the tablets sent on every VStream (how
many events each response carried tells how the tablets batched); they are
written with the rest at most every 0.5 s. The counts cost one small file
write per call started or ended (and per 0.5 s of traffic), a few
additions per response.

Usage: python benchmarks/_counting_cluster.py --counts FILE -- <vsmux cluster options>
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

COUNTS: Counter[str] = Counter()
BY_TABLET: Counter[str] = Counter()
LAST_WRITE = [0.0]


def _writer(path: str) -> Any:
    def write() -> None:
        LAST_WRITE[0] = time.monotonic()
        data = json.dumps({**COUNTS, "vstream_opened_by_tablet": dict(BY_TABLET)})
        with open(path + ".tmp", "w") as f:
            f.write(data)
        os.replace(path + ".tmp", path)

    return write


def apply(path: str) -> None:
    import vsmux.transport._simulated_tablet as simulated

    service = simulated.SimulatedQueryService
    write = _writer(path)
    batches = service.tablet_batches
    stream_health = service._stream_health

    def counted_batches(self: Any, request: Any) -> AsyncGenerator[Any, None]:
        inner = batches(self, request)
        try:
            alias = self.current_tablet().alias
        except Exception:  # a tablet that is gone: the inner stream reports it
            alias = "?"

        async def run() -> AsyncGenerator[Any, None]:
            COUNTS["vstream_opened"] += 1
            COUNTS["vstream_open"] += 1
            BY_TABLET[alias] += 1
            write()
            try:
                async with aclosing(inner) as it:
                    async for batch in it:
                        COUNTS["vstream_responses"] += 1
                        COUNTS["vstream_events"] += len(batch)
                        if time.monotonic() - LAST_WRITE[0] > 0.5:
                            write()
                        yield batch
            finally:
                COUNTS["vstream_open"] -= 1
                write()

        return run()

    async def counted_health(self: Any, stream: Any) -> None:
        COUNTS["health_opened"] += 1
        COUNTS["health_open"] += 1
        write()
        try:
            await stream_health(self, stream)
        finally:
            COUNTS["health_open"] -= 1
            write()

    service.tablet_batches = counted_batches  # type: ignore[method-assign]
    service._stream_health = counted_health  # type: ignore[method-assign]
    write()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, cluster_args = argv, []
    if "--" in argv:
        cut = argv.index("--")
        ours, cluster_args = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--counts", required=True, metavar="FILE", help="JSON counts written here")
    args = p.parse_args(ours)
    apply(args.counts)
    from vsmux.cli.main import main as vsmux_main

    result: int = vsmux_main(["cluster", *cluster_args])
    return result


if __name__ == "__main__":
    sys.exit(main())
