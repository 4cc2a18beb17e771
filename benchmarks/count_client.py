"""Counting VStream client: events, bytes and responses per second, without decoding.

Calls ``/vtgateservice.Vitess/VStream`` (a vsmux gateway or the relay) with
grpclib on plain asyncio and receives bodies as raw bytes (``RawMessage``).
Events are counted by skipping record lengths; nothing is decoded, except in
``--latency`` mode, where COMMIT events' ``current_time`` stamps (read with
``vsmux.wire.split_response``) give commit-to-receipt latency.

Timeline: ``--warmup`` s uncounted, then a ``--seconds`` measured window.
``--pause-after``/``--pause-seconds`` stop reading for a while (prints
``{"event": "pause_start"}``/``pause_end`` lines so a caller can sample the
gateway). ``--until-bytes`` ends the run at the first COMMIT after that many
bytes have arrived.

Prints one JSON line with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import grpclib.const
from grpclib.client import Channel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events import COMMIT, RawMessage, count_events

from vsmux.proto import binlogdata, topodata, vtgate
from vsmux.wire.frames import split_response


def build_request(args: argparse.Namespace) -> vtgate.VStreamRequest:
    shards = [s for s in args.shards.split(",") if s] or [""]
    return vtgate.VStreamRequest(
        tablet_type=topodata.TabletType.PRIMARY,
        vgtid=binlogdata.VGtid(
            shard_gtids=[
                binlogdata.ShardGtid(keyspace=args.keyspace, shard=s, gtid="current")
                for s in shards
            ]
        ),
        filter=binlogdata.Filter(rules=[binlogdata.Rule(match="/.*")]),
        flags=vtgate.VStreamFlags(transaction_chunk_size=args.chunk_size),
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    channel = Channel("127.0.0.1", args.port)
    events = nbytes = responses = 0
    latencies: list[float] = []
    measuring = False
    m_events = m_bytes = m_resp = 0
    t_start = time.monotonic()
    t_measure = t_start + args.warmup
    t_end = t_measure + args.seconds
    hard_end = t_start + args.max_seconds
    pause_at = t_start + args.pause_after if args.pause_seconds > 0 else None
    first_at: float | None = None
    cpu0 = time.process_time()
    status = "ok"
    try:
        async with channel.request(
            "/vtgateservice.Vitess/VStream",
            grpclib.const.Cardinality.UNARY_STREAM,
            vtgate.VStreamRequest,
            RawMessage,
            timeout=args.max_seconds + 5,
        ) as stream:
            await stream.send_message(build_request(args), end=True)
            while True:
                body: bytes | None = await stream.recv_message()
                if body is None:
                    status = "ended"
                    break
                now = time.monotonic()
                if first_at is None:
                    first_at = now - t_start
                n = count_events(body)
                events += n
                nbytes += len(body)
                responses += 1
                if args.latency:
                    recv_ns = time.time_ns()
                    for frame in split_response(body):
                        if frame.type == COMMIT:
                            sent_ns = frame.header().current_time
                            if measuring:
                                latencies.append((recv_ns - sent_ns) / 1e6)
                if not measuring and now >= t_measure and args.until_bytes == 0:
                    measuring = True
                    t_measure = now
                    print(json.dumps({"event": "measure_start"}), flush=True)
                    m_events, m_bytes, m_resp = events, nbytes, responses
                if pause_at is not None and now >= pause_at:
                    print(json.dumps({"event": "pause_start"}), flush=True)
                    await asyncio.sleep(args.pause_seconds)
                    print(json.dumps({"event": "pause_end"}), flush=True)
                    pause_at = None
                if (
                    args.until_bytes
                    and nbytes >= args.until_bytes
                    and any(f.type == COMMIT for f in split_response(body))
                ):
                    # The whole transaction arrived, through its COMMIT.
                    t_measure = t_start
                    break
                if (measuring and now >= t_end) or now >= hard_end:
                    break
            t_stop = time.monotonic()
            print(json.dumps({"event": "measure_end"}), flush=True)
            await stream.cancel()
    except Exception as exc:  # report, don't hide, a failed stream
        status = f"error: {type(exc).__name__}: {exc}"
        t_stop = time.monotonic()
    finally:
        channel.close()
    if args.until_bytes:
        m_events = m_bytes = m_resp = 0
    elapsed = max(1e-9, t_stop - t_measure)
    out: dict[str, Any] = {
        "status": status,
        "first_response_s": first_at,
        "window_s": elapsed,
        "events": events - m_events,
        "bytes": nbytes - m_bytes,
        "responses": responses - m_resp,
        "events_per_s": (events - m_events) / elapsed,
        "mb_per_s": (nbytes - m_bytes) / elapsed / 1e6,
        "responses_per_s": (responses - m_resp) / elapsed,
        "client_cpu_s": time.process_time() - cpu0,
        "client_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.latency:
        lat = sorted(latencies)
        out.update(
            commits=len(lat),
            p50_ms=_percentile(lat, 0.50),
            p99_ms=_percentile(lat, 0.99),
            max_ms=lat[-1] if lat else float("nan"),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--keyspace", default="bench")
    p.add_argument("--shards", default="", help="comma-separated; empty = all shards")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--chunk-size", type=int, default=0, help="transaction_chunk_size flag")
    p.add_argument("--latency", action="store_true")
    p.add_argument("--pause-after", type=float, default=0.0)
    p.add_argument("--pause-seconds", type=float, default=0.0)
    p.add_argument("--until-bytes", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=600.0)
    args = p.parse_args(argv)
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
