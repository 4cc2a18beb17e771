"""Hostile single requests against ``vsmux serve``: how long each takes, and the gateway meanwhile.

Each case starts a fresh gateway (a simulated 2-shard keyspace), sends one
request as raw bytes with grpcio, and polls ``grpc.health.v1.Health/Check``
every 50 ms from another thread while it runs. Reported per case: the
status the hostile call got, its message length, how long it took, the
slowest health check answered meanwhile, the longest gateway log line and
whether a traceback was logged. A case that has not finished after
``--timeout`` seconds is reported as such (the gateway is then killed).

These were the freezes of issue 12 (1 MB keyspace name > 180 s; a 20k-range
gtid 162 s; a 1 MB filter SQL 49 s; ``LIKE`` with 24 ``%`` never finished).

Usage: python benchmarks/bench_hostile.py [--scale 1.0] [--timeout 60] [--only NAME]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
from _harness import (
    free_port,
    machine_info,
    print_table,
    spawn,
    vsmux_serve_cmd,
    wait_for_port,
    write_results,
)
from google.protobuf.message import DecodeError

from vsmux.proto import binlogdata, query, vtgate, vtrpc
from vsmux.wire.upb import message_class

TOPOLOGY = """\
cell = "zone1"
[keyspaces.commerce]
shards = ["-80", "80-"]
[[tablets]]
keyspace = "commerce"
shard = "-80"
type = "primary"
uid = 100
simulated = true
[[tablets]]
keyspace = "commerce"
shard = "80-"
type = "primary"
uid = 200
simulated = true
"""

VSTREAM = "/vtgateservice.Vitess/VStream"
EXECUTE = "/vtgateservice.Vitess/Execute"
HEALTH = "/grpc.health.v1.Health/Check"


def _vstream(
    keyspace: str = "commerce",
    shard: str = "-80",
    gtid: str = "current",
    rules: list[binlogdata.Rule] | None = None,
    principal: str = "",
) -> bytes:
    request = vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace=keyspace, shard=shard, gtid=gtid)]
        ),
        filter=binlogdata.Filter(rules=rules) if rules is not None else None,
        caller_id=vtrpc.CallerId(principal=principal) if principal else None,
    )
    return bytes(request)


def _execute(sql: str) -> bytes:
    return bytes(vtgate.ExecuteRequest(session=vtgate.Session(), query=query.BoundQuery(sql=sql)))


def _gtid_ranges(n: int) -> str:
    return "MySQL56/" + ",".join(f"{uuid.UUID(int=i + 1)}:1-{i + 2}" for i in range(n))


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    build: Callable[[float], bytes]
    serve_args: tuple[str, ...] = ()


# Limits raised so that a request reaches the parsers behind them (a gateway
# from before the limits ran every request this way).
RAISED = (
    "--max-name-bytes=4000000",
    "--max-shard-name-bytes=4000000",
    "--max-gtid-bytes=4000000",
    "--max-filter-sql-bytes=4000000",
)


CASES = [
    Case("keyspace 1 MB", VSTREAM, lambda s: _vstream(keyspace="k" * int(1_000_000 * s))),
    Case("shard 100 KB", VSTREAM, lambda s: _vstream(shard="s" * int(100_000 * s))),
    Case("gtid 20k ranges", VSTREAM, lambda s: _vstream(gtid=_gtid_ranges(int(20_000 * s)))),
    Case(
        "filter SQL 1 MB",
        VSTREAM,
        lambda s: _vstream(
            rules=[
                binlogdata.Rule(
                    match="customer",
                    filter="select * from customer" + " " * int(1_000_000 * s) + "x",
                )
            ]
        ),
    ),
    Case(
        "keyspace 1 MB, limit raised",
        VSTREAM,
        lambda s: _vstream(keyspace="k" * int(1_000_000 * s)),
        RAISED,
    ),
    Case(
        "gtid 20k ranges, limit raised",
        VSTREAM,
        lambda s: _vstream(gtid=_gtid_ranges(int(20_000 * s))),
        RAISED,
    ),
    Case(
        "filter SQL 1 MB, limit raised",
        VSTREAM,
        lambda s: _vstream(
            rules=[
                binlogdata.Rule(
                    match="customer",
                    filter="select * from customer" + " " * int(1_000_000 * s) + "x",
                )
            ]
        ),
        RAISED,
    ),
    Case(
        "caller newline",
        VSTREAM,
        lambda s: _vstream(keyspace="nope", principal="alice\nFORGED INFO vsmux.server x"),
    ),
    Case("LIKE 16 %", EXECUTE, lambda s: _execute("SHOW VITESS_SHARDS LIKE '" + "%" * 16 + "x'")),
    Case("LIKE 24 %", EXECUTE, lambda s: _execute("SHOW VITESS_SHARDS LIKE '" + "%" * 24 + "x'")),
    Case("Execute 10 MB SQL", EXECUTE, lambda s: _execute("select " + "x" * int(10_000_000 * s))),
    Case("request 64 MB", VSTREAM, lambda s: _vstream(principal="p" * int(64_000_000 * s))),
    Case("random bytes", VSTREAM, lambda s: random.Random(1).randbytes(4096)),
    Case("11-byte varint", VSTREAM, lambda s: b"\x10" + b"\xff" * 10 + b"\x01"),
    Case("vgtid as varint", VSTREAM, lambda s: b"\x18\x05"),
    Case("invalid UTF-8", VSTREAM, lambda s: b"\x1a\x06\x0a\x04\x0a\x02\xff\xfe"),
    # The last occurrence of a field wins: the varint replaces the session sent before it.
    Case("Execute session varint", EXECUTE, lambda s: _execute("SHOW DATABASES") + b"\x10\x05"),
]


def _call(
    channel: grpc.Channel, method: str, body: bytes, timeout: float
) -> tuple[str, int, bool | None]:
    """Status name, message length, and whether an Execute reply decodes (None: no reply)."""
    identity: Any = lambda b: b  # noqa: E731
    try:
        if method == VSTREAM:
            call = channel.unary_stream(
                method, request_serializer=identity, response_deserializer=identity
            )
            for _ in call(body, timeout=timeout):
                pass
            return "OK", 0, None
        unary = channel.unary_unary(
            method, request_serializer=identity, response_deserializer=identity
        )
        reply = unary(body, timeout=timeout)
    except grpc.RpcError as err:
        return err.code().name, len(err.details() or ""), None
    official = message_class("vtgate.ExecuteResponse")()
    try:
        official.ParseFromString(reply)
    except DecodeError:
        return "OK", 0, False
    return "OK", 0, True


_RECORD_START = re.compile(r"\d{4}-\d\d-\d\d ")


def run_case(case: Case, scale: float, timeout: float, log_dir: Path) -> dict[str, Any]:
    body = case.build(scale)
    port = free_port()
    topology = log_dir / "topology.toml"
    topology.write_text(TOPOLOGY)
    name = case.name.replace(" ", "_").replace("%", "pct")
    with spawn(name, vsmux_serve_cmd(topology, port, *case.serve_args), log_dir) as child:
        wait_for_port(port, child)
        options = [("grpc.max_send_message_length", -1)]
        done = threading.Event()
        worst = [0.0]
        health_failures = [0]

        def poll_health() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                check = ch.unary_unary(HEALTH)
                while not done.is_set():
                    started = time.monotonic()
                    try:
                        check(b"", timeout=timeout)
                    except grpc.RpcError:
                        health_failures[0] += 1
                    worst[0] = max(worst[0], time.monotonic() - started)
                    time.sleep(0.05)

        poller = threading.Thread(target=poll_health, daemon=True)
        poller.start()
        started = time.monotonic()
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
            status, message_len, decodes = _call(ch, case.method, body, timeout)
        elapsed = time.monotonic() - started
        done.set()
        poller.join(timeout=timeout)
        stderr = child.stderr_path.read_text(errors="replace") if child.stderr_path else ""
    lines = stderr.splitlines()
    return {
        "case": case.name,
        "request_bytes": len(body),
        "status": status if status != "DEADLINE_EXCEEDED" else f"none in {timeout:.0f}s",
        "message_len": message_len,
        "reply_decodes": "-" if decodes is None else decodes,
        "seconds": round(elapsed, 3),
        "worst_health_s": round(worst[0], 3),
        "health_failures": health_failures[0],
        "longest_log_line": max((len(line) for line in lines), default=0),
        # Lines that do not start like a log record: forged, or traceback lines.
        "stray_lines": sum(1 for line in lines if not _RECORD_START.match(line)),
        "traceback": "Traceback" in stderr,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sizes")
    parser.add_argument("--timeout", type=float, default=60.0, help="per case, seconds")
    parser.add_argument("--only", action="append", default=[], help="case names to run")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vsmux-hostile-") as tmp:
        for case in CASES:
            if args.only and case.name not in args.only:
                continue
            result = run_case(case, args.scale, args.timeout, Path(tmp))
            rows.append(result)
            print(result, flush=True)
    print_table(list(rows[0]), [list(r.values()) for r in rows])
    write_results(
        "bench_hostile",
        {"machine": machine_info(), "scale": args.scale, "timeout": args.timeout, "cases": rows},
    )


if __name__ == "__main__":
    main()
