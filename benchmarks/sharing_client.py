"""``load_client.py`` clients that also measure latency, for ``bench_sharing.py``.

The same clients as ``load_client.py`` (raw HTTP/2, one connection each, a
VStream of ``--keyspace`` from ``current``, every shard, the same timeline
and per-client counts), plus, for every COMMIT event received inside the
measured window, its latency: the receipt time (``time.time_ns()`` at the
socket read that completed the response) minus the event's ``current_time``
(when the tablet sent it; same host, so the same clock). The latencies of
all clients of the process are kept as a histogram of 0.1 ms buckets
(``latency_hist``: bucket -> count) that the benchmark merges over the
client processes for exact percentiles at that resolution.

Only responses carrying a transaction are split into events (C loop), and
only their COMMIT events' headers are read.

Prints the ``load_client.py`` lines; the final one has ``latency_hist``,
``latency_commits`` and ``latency_negative`` (receipts stamped before the
send: clock skew between processes, counted in bucket 0) added.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load_client
from _events import COMMIT

from vsmux.wire.frames import split_response

#: Histogram bucket width, in milliseconds.
BUCKET_MS = 0.1
_BUCKET_NS = int(BUCKET_MS * 1e6)

LATENCY: Counter[int] = Counter()
NEGATIVE = [0]


class LatencyVStream(load_client.RawVStream):
    """A :class:`load_client.RawVStream` that also records COMMIT latencies."""

    _wall_offset_ns = time.time_ns() - time.monotonic_ns()

    def _message(self, body: bytes, now: float) -> None:
        super()._message(body, now)
        if now < self._measure_from or load_client._is_heartbeat(body) or len(body) < 8:
            return
        received_ns = int(now * 1e9) + self._wall_offset_ns
        for frame in split_response(body):
            if frame.type == COMMIT:
                sent_ns = frame.header().current_time
                if not sent_ns:
                    continue
                delta = received_ns - sent_ns
                if delta < 0:
                    NEGATIVE[0] += 1
                    delta = 0
                LATENCY[delta // _BUCKET_NS] += 1


def main(argv: list[str] | None = None) -> int:
    load_client.RawVStream = LatencyVStream  # type: ignore[misc]
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--keyspace", default="commerce")
    p.add_argument("--heartbeat-interval", type=int, default=1)
    p.add_argument("--start-at", type=float, required=True, help="time.time() to start")
    p.add_argument("--measure-from", type=float, required=True, help="time.time()")
    p.add_argument("--end-at", type=float, required=True, help="time.time() to stop")
    p.add_argument("--gap-threshold", type=float, default=2.0)
    args = p.parse_args(argv)
    args.impl = "raw"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    result: dict[str, Any] = asyncio.run(load_client.run(args))
    result["latency_bucket_ms"] = BUCKET_MS
    result["latency_hist"] = {str(k): v for k, v in sorted(LATENCY.items())}
    result["latency_commits"] = sum(LATENCY.values())
    result["latency_negative"] = NEGATIVE[0]
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
