"""Frames/s for the gateway's per-event work, next to full decode/encode.

Each variant takes the same encoded tablet responses (ROW events of about 300
bytes, 100 per response), prefixes every table name with its keyspace, reads
the header the gateway needs, and produces encoded client responses:

- ``frames``: vsmux.wire as the gateway runs it (split, type of every event,
  header of the last event of each response, then the packer renames each
  event as it writes it into the client response: one copy per event), with
  the C loops (``vsmux.wire._accel``) when they are built, as in every
  ``frames, ...`` row below;
- ``frames, pure Python``: the same with the C loops off (the reference
  Python split and packer, what runs where no compiler was available);
- ``frames, rename then join``: the same, but renaming each event into a new
  frame first (``rename_table``) and joining after (two copies per event);
- ``frames, header of every event``: the same, reading every header (upb);
- ``frames, every header by pure-Python scan``: the same with the reference
  scanner instead of upb (why headers use upb);
- ``frames, pure-Python split``: the same with the reference Python walk
  splitting responses instead of upb (why splitting uses upb);
- ``frames, rename via upb``: split and join as frames, but each rename parses
  the event with a table-name-only upb class and re-serialises it (why renames
  stay in Python);
- ``upb (whole response)``: protobuf's C parser, modify names, serialise;
- ``upb (per-event frames)``: the same, but yielding per-event bytes as the
  gateway's merge needs;
- ``betterproto2``: full decode, modify, encode.

Run: ``.venv/bin/python benchmarks/bench_frames.py [--responses N] [--repeat R]``.
Prints a table and writes ``benchmarks/results/bench_frames.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from vsmux.proto import binlogdata, query
from vsmux.wire import (
    Frame,
    ResponsePacker,
    encode_response,
    pack_responses,
    rename_table,
    split_response,
)
from vsmux.wire.accel import ACCELERATED
from vsmux.wire.frames import split_response_python
from vsmux.wire.scan import scan_events, scan_header
from vsmux.wire.upb import message_class

EVENTS_PER_RESPONSE = 100
KEYSPACE = "commerce"
RESULTS = Path(__file__).parent / "results" / "bench_frames.json"
NO_LIMIT = 1 << 40  # one client response per tablet response, as in the other variants


def pack(frames: list[Frame]) -> bytes:
    """The gateway's packing with the fused rename."""
    (body,) = pack_responses(frames, NO_LIMIT, KEYSPACE)
    return body


def row_event(i: int) -> binlogdata.VEvent:
    """A realistic ROW event of about 300 bytes (one insert, six columns)."""
    values = [
        str(1_000_000 + i).encode(),
        f"customer-{i:08d}@example.com".encode(),
        b"2024-05-01 12:34:56.123456",
        f"{(i * 37) % 100000 / 100:.2f}".encode(),
        (b"shipped order with a few notes attached " * 3)[: 90 + i % 20],
        bytes(range(i % 7, i % 7 + 40)),
    ]
    row = query.Row(lengths=[len(v) for v in values], values=b"".join(values))
    return binlogdata.VEvent(
        type=binlogdata.VEventType.ROW,
        timestamp=1_714_566_896,
        row_event=binlogdata.RowEvent(
            table_name=("customer", "corder", "product")[i % 3],
            row_changes=[binlogdata.RowChange(after=row)],
            keyspace=KEYSPACE,
            shard="-80",
        ),
        current_time=1_714_566_896_123_456_789 + i,
        keyspace=KEYSPACE,
        shard="-80",
    )


def make_responses(count: int) -> list[bytes]:
    responses = []
    for r in range(count):
        events = [row_event(r * EVENTS_PER_RESPONSE + i) for i in range(EVENTS_PER_RESPONSE)]
        responses.append(bytes(binlogdata.VStreamResponse(events=events)))
    return responses


def run_frames(responses: list[bytes]) -> list[bytes]:
    out = []
    for body in responses:
        frames = split_response(body)
        frames[-1].header()
        out.append(pack(frames))
    return out


def run_frames_pure_python(responses: list[bytes]) -> list[bytes]:
    out = []
    packer = ResponsePacker(NO_LIMIT, use_native=False)
    for body in responses:
        frames = split_response_python(body)
        frames[-1].header()
        packer.add(frames, KEYSPACE)
        out += packer.take()
    return out


def run_frames_rename_then_join(responses: list[bytes]) -> list[bytes]:
    out = []
    for body in responses:
        frames = split_response(body)
        frames[-1].header()
        out.append(encode_response([rename_table(f, KEYSPACE) for f in frames]))
    return out


def run_frames_all_headers(responses: list[bytes]) -> list[bytes]:
    out = []
    for body in responses:
        frames = split_response(body)
        for f in frames:
            f.header()
        out.append(pack(frames))
    return out


def run_frames_python_headers(responses: list[bytes]) -> list[bytes]:
    out = []
    for body in responses:
        frames = split_response(body)
        for f in frames:
            scan_header(f.raw)
        out.append(pack(frames))
    return out


def run_frames_python_split(responses: list[bytes]) -> list[bytes]:
    out = []
    for body in responses:
        frames = [Frame.from_bytes(raw) for raw in scan_events(body)]
        frames[-1].header()
        out.append(pack(frames))
    return out


def _table_name_only_class() -> Any:
    """A upb class for VEvent that knows only type and row_event.table_name."""
    lite = descriptor_pb2.FileDescriptorProto(name="lite.proto", package="lite", syntax="proto3")
    table = lite.message_type.add(name="RowEvent")
    table.field.add(name="table_name", number=1, type=9, label=1)  # string
    event = lite.message_type.add(name="VEvent")
    event.field.add(name="type", number=1, type=5, label=1)  # int32
    event.field.add(name="row_event", number=5, type=11, type_name=".lite.RowEvent", label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(lite)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("lite.VEvent"))


def run_frames_upb_rename(responses: list[bytes]) -> list[bytes]:
    parse = _table_name_only_class().FromString
    prefix = KEYSPACE + "."
    out = []
    for body in responses:
        frames = split_response(body)
        frames[-1].header()
        renamed = []
        for f in frames:
            message = parse(f.raw)
            message.row_event.table_name = prefix + message.row_event.table_name
            renamed.append(Frame(f.type, message.SerializeToString()))
        out.append(encode_response(renamed))
    return out


def run_betterproto(responses: list[bytes]) -> list[bytes]:
    out = []
    prefix = KEYSPACE + "."
    for body in responses:
        message = binlogdata.VStreamResponse.parse(body)
        for event in message.events:
            if event.row_event is not None:
                event.row_event.table_name = prefix + event.row_event.table_name
        out.append(bytes(message))
    return out


def run_upb(responses: list[bytes]) -> list[bytes]:
    cls = message_class("binlogdata.VStreamResponse")
    out = []
    prefix = KEYSPACE + "."
    for body in responses:
        message = cls.FromString(body)
        for event in message.events:
            if event.type == 12:
                event.row_event.table_name = prefix + event.row_event.table_name
        message.events[-1].current_time  # noqa: B018  (the header read)
        out.append(message.SerializeToString())
    return out


def run_upb_frames(responses: list[bytes]) -> list[bytes]:
    cls = message_class("binlogdata.VStreamResponse")
    out = []
    prefix = KEYSPACE + "."
    for body in responses:
        message = cls.FromString(body)
        raws = []
        for event in message.events:
            if event.type == 12:
                event.row_event.table_name = prefix + event.row_event.table_name
            raws.append(event.SerializeToString())
        out.append(b"".join(b"\x0a" + bytes([len(r) & 0x7F | 0x80, len(r) >> 7]) + r for r in raws))
    return out


VARIANTS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "frames": run_frames,
    "frames, pure Python": run_frames_pure_python,
    "frames, rename then join": run_frames_rename_then_join,
    "frames, header of every event": run_frames_all_headers,
    "frames, every header by pure-Python scan": run_frames_python_headers,
    "frames, pure-Python split": run_frames_python_split,
    "frames, rename via upb": run_frames_upb_rename,
    "upb (whole response)": run_upb,
    "upb (per-event frames)": run_upb_frames,
    "betterproto2": run_betterproto,
}


def check_same_output(responses: list[bytes]) -> None:
    """Every variant must produce the same messages (else the numbers mean nothing)."""
    expected = [binlogdata.VStreamResponse.parse(b) for b in run_betterproto(responses[:2])]
    for name, run in VARIANTS.items():
        got = [binlogdata.VStreamResponse.parse(b) for b in run(responses[:2])]
        if got != expected:
            raise SystemExit(f"variant {name!r} produced different messages")


def measure(responses: list[bytes], repeat: int) -> dict[str, list[float]]:
    """Seconds per run, interleaving variants so machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(repeat):
        for name, run in VARIANTS.items():
            start = time.perf_counter()
            run(responses)
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=100, help="responses per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs per variant (median)")
    args = parser.parse_args(argv)

    responses = make_responses(args.responses)
    events = args.responses * EVENTS_PER_RESPONSE
    event_bytes = sum(len(b) for b in responses) / events
    check_same_output(responses)
    load_before = os.getloadavg()
    times = measure(responses, args.repeat)
    load_after = os.getloadavg()

    baseline = statistics.median(times["betterproto2"])
    rows: list[dict[str, Any]] = []
    for name, samples in times.items():
        median = statistics.median(samples)
        rows.append(
            {
                "variant": name,
                "median_seconds": median,
                "frames_per_second": events / median,
                "ns_per_frame": median / events * 1e9,
                "speedup_vs_betterproto2": baseline / median,
                "samples_seconds": samples,
            }
        )

    print(
        f"{events} ROW events of ~{event_bytes:.0f} bytes in {args.responses} responses, "
        f"median of {args.repeat}; load average {load_before[0]:.1f} -> {load_after[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(f"{'variant':<42} {'frames/s':>12} {'ns/frame':>10} {'x betterproto2':>15}")
    for row in rows:
        print(
            f"{row['variant']:<42} {row['frames_per_second']:>12,.0f} "
            f"{row['ns_per_frame']:>10,.0f} {row['speedup_vs_betterproto2']:>14.1f}x"
        )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "command": "python " + " ".join(["benchmarks/bench_frames.py", *sys.argv[1:]]),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "nproc": os.cpu_count(),
                "c_extension": ACCELERATED,
                "loadavg_1min_before_after": [load_before[0], load_after[0]],
                "events": events,
                "event_bytes": event_bytes,
                "events_per_response": EVENTS_PER_RESPONSE,
                "repeat": args.repeat,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
