"""Many VStream clients in one process, each on its own connection, for ``bench_load.py``.

Every client opens its own TCP and HTTP/2 connection to the gateway and asks
for a VStream of ``--keyspace`` from ``current`` on every shard, with
``heartbeat_interval`` set. ``--impl raw`` (the default) speaks HTTP/2 frames
directly (:class:`RawVStream`), at a few microseconds per response, so one
process can hold hundreds of busy clients without becoming what is measured;
``--impl grpclib`` uses grpclib's client (~30 us per response), as a check.
A response is classified as a heartbeat when it is a lone HEARTBEAT event
(read from its first bytes) and its events are counted by skipping record
lengths, so nothing is decoded.

All clients start at ``--start-at`` (a ``time.time()`` instant shared by the
client processes, so a burst really is one), run until ``--end-at`` and then
cancel their streams and close their connections. Per client it records:

- the outcome (``ok``, or the error that ended the call);
- the time from starting the call to the first response, and to the first
  response carrying a transaction (``first_data_s``);
- responses, heartbeats and events received inside the measured window
  ``[--measure-from, --end-at]``;
- the largest gap between two responses inside that window (the window's
  start and end count as responses, so a client that received nothing in
  it has a gap as long as the window), and how many gaps exceeded
  ``--gap-threshold``.

Prints ``{"event": "ready"}`` once its clients are set up, then one JSON line
with every client's numbers and this process's CPU time.
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
import hpack
from grpclib.client import Channel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events import RawMessage, count_events

from vsmux.proto import binlogdata, topodata, vtgate

VSTREAM = "/vtgateservice.Vitess/VStream"
# A response holding one HEARTBEAT event: record key, a one-byte length, then
# the event's first field, type (1) = HEARTBEAT (14).
_HEARTBEAT_PREFIX = b"\x08\x0e"


def _is_heartbeat(body: bytes) -> bool:
    return len(body) < 130 and body[2:4] == _HEARTBEAT_PREFIX


def _has_transaction(body: bytes) -> bool:
    """At least a whole transaction's worth of events (BEGIN, ROW, VGTID, COMMIT)."""
    return not _is_heartbeat(body) and count_events(body) >= 4


def build_request(keyspace: str, heartbeat_interval: int) -> bytes:
    return bytes(
        vtgate.VStreamRequest(
            tablet_type=topodata.TabletType.PRIMARY,
            vgtid=binlogdata.VGtid(
                shard_gtids=[binlogdata.ShardGtid(keyspace=keyspace, shard="", gtid="current")]
            ),
            filter=binlogdata.Filter(rules=[binlogdata.Rule(match="/.*")]),
            flags=vtgate.VStreamFlags(heartbeat_interval=heartbeat_interval),
        )
    )


class ClientStats:
    __slots__ = (
        "big_gaps",
        "events",
        "first_data_s",
        "first_s",
        "heartbeats",
        "last_in_window",
        "max_gap",
        "responses",
        "status",
        "total_responses",
    )

    def __init__(self) -> None:
        self.status = "not started"
        self.first_s: float | None = None
        self.first_data_s: float | None = None
        self.responses = 0
        self.heartbeats = 0
        self.events = 0
        self.total_responses = 0
        self.max_gap = 0.0
        self.big_gaps = 0
        self.last_in_window: float | None = None


async def one_client(
    args: argparse.Namespace, request: bytes, stats: ClientStats, measure_from: float
) -> None:
    """One client's call, from its start (a monotonic instant) until cancelled."""
    channel = Channel("127.0.0.1", args.port)
    started = time.monotonic()
    threshold = args.gap_threshold
    stats.status = "connecting"
    try:
        async with channel.request(
            VSTREAM, grpclib.const.Cardinality.UNARY_STREAM, RawMessage, RawMessage
        ) as stream:
            await stream.send_message(RawMessage(request), end=True)
            stats.status = "ok"
            while True:
                body: Any = await stream.recv_message()  # bytes (RawMessage.FromString)
                if body is None:
                    stats.status = "ended by the gateway"
                    return
                now = time.monotonic()
                stats.total_responses += 1
                if stats.first_s is None:
                    stats.first_s = now - started
                if stats.first_data_s is None and _has_transaction(body):
                    stats.first_data_s = now - started
                if now < measure_from:
                    continue
                last = stats.last_in_window
                gap = now - (measure_from if last is None else last)
                if gap > stats.max_gap:
                    stats.max_gap = gap
                if gap > threshold:
                    stats.big_gaps += 1
                stats.last_in_window = now
                stats.responses += 1
                if _is_heartbeat(body):
                    stats.heartbeats += 1
                else:
                    stats.events += count_events(body)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is a result here
        stats.status = f"error: {type(exc).__name__}: {exc}"[:300]
    finally:
        channel.close()


# --------------------------------------------------------------------------- raw HTTP/2


_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _CONTINUATION = 0, 1, 3, 4, 6, 7, 9
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
#: Receive windows, as grpclib's defaults (4 MiB for the connection and the stream).
WINDOW = 4 * 1024 * 1024


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RawVStream(asyncio.Protocol):
    """One connection carrying one VStream call, spoken as plain HTTP/2 frames.

    A gRPC client in as few Python steps per response as possible, so that
    hundreds of them in one process measure the gateway, not themselves:
    frames are parsed with slicing, gRPC messages are cut from DATA payloads
    by their 5-byte prefixes, and windows are topped up as data arrives (the
    client reads everything at once). Header blocks go through ``hpack``
    (there are two per call). Every message arriving in one socket read gets
    that read's timestamp.
    """

    def __init__(
        self, port: int, request: bytes, stats: ClientStats, measure_from: float, threshold: float
    ) -> None:
        self._port = port
        self._request = request
        self._stats = stats
        self._measure_from = measure_from
        self._threshold = threshold
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._msg: list[bytes] = []  # the current message's pieces
        self._msg_need = -1  # bytes of the current message still to come; -1: in a prefix
        self._prefix = b""
        self._unacked = 0
        self._decoder = hpack.Decoder()
        self._headers = b""
        self._headers_end_stream = False
        self.started = 0.0
        #: Set when this side closes the connection (the run is over): not a failure.
        self.leaving = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        headers = hpack.Encoder().encode(
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", VSTREAM),
                (":authority", f"127.0.0.1:{self._port}"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]
        )
        message = b"\x00" + len(self._request).to_bytes(4, "big") + self._request
        settings = (4).to_bytes(2, "big") + WINDOW.to_bytes(4, "big")  # INITIAL_WINDOW_SIZE
        transport.write(
            _PREFACE
            + _frame(_SETTINGS, 0, 0, settings)
            + _frame(8, 0, 0, (WINDOW - 65535).to_bytes(4, "big"))  # connection window
            + _frame(_HEADERS, _END_HEADERS, 1, headers)
            + _frame(_DATA, _END_STREAM, 1, message)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.leaving and self._stats.status in ("ok", "connecting"):
            self._stats.status = f"error: connection lost: {exc!r}"[:300]
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf + data if self._buf else data
        pos = 0
        end = len(buf)
        while end - pos >= 9:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            if end - pos < 9 + length:
                break
            kind = buf[pos + 3]
            flags = buf[pos + 4]
            payload = buf[pos + 9 : pos + 9 + length]
            pos += 9 + length
            if kind == _DATA:
                self._data(payload, flags, now)
            elif kind in (_HEADERS, _CONTINUATION):
                self._header_block(payload, flags, kind)
            elif kind == _SETTINGS and not flags & _ACK:
                self._write(_frame(_SETTINGS, _ACK, 0, b""))
            elif kind == _PING and not flags & _ACK:
                self._write(_frame(_PING, _ACK, 0, payload))
            elif kind == _RST_STREAM:
                self._end(f"error: stream reset (code {int.from_bytes(payload, 'big')})")
            elif kind == _GOAWAY and self._stats.status in ("ok", "connecting"):
                code = int.from_bytes(payload[4:8], "big")
                if code:
                    self._end(f"error: GOAWAY code {code}")
        self._buf = buf[pos:]

    # frames

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _data(self, payload: bytes, flags: int, now: float) -> None:
        size = len(payload)
        if flags & _PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        self._unacked += size
        if self._unacked >= WINDOW // 4:
            increment = self._unacked.to_bytes(4, "big")
            self._write(_frame(8, 0, 0, increment) + _frame(8, 0, 1, increment))
            self._unacked = 0
        pos = 0
        end = len(payload)
        while pos < end:
            if self._msg_need < 0:
                piece = payload[pos : pos + 5 - len(self._prefix)]
                self._prefix += piece
                pos += len(piece)
                if len(self._prefix) == 5:
                    self._msg_need = int.from_bytes(self._prefix[1:], "big")
                    self._prefix = b""
                    self._msg = []
                    if self._msg_need == 0:
                        self._message(b"", now)
                continue
            take = min(self._msg_need, end - pos)
            self._msg.append(payload[pos : pos + take])
            pos += take
            self._msg_need -= take
            if self._msg_need == 0:
                body = self._msg[0] if len(self._msg) == 1 else b"".join(self._msg)
                self._msg_need = -1
                self._message(body, now)
        if flags & _END_STREAM:
            self._end("ended by the gateway")

    def _message(self, body: bytes, now: float) -> None:
        stats = self._stats
        stats.total_responses += 1
        if stats.first_s is None:
            stats.first_s = now - self.started
        if stats.first_data_s is None and _has_transaction(body):
            stats.first_data_s = now - self.started
        if now < self._measure_from:
            return
        last = stats.last_in_window
        gap = now - (self._measure_from if last is None else last)
        if gap > stats.max_gap:
            stats.max_gap = gap
        if gap > self._threshold:
            stats.big_gaps += 1
        stats.last_in_window = now
        stats.responses += 1
        if _is_heartbeat(body):
            stats.heartbeats += 1
        else:
            stats.events += count_events(body)

    def _header_block(self, payload: bytes, flags: int, kind: int) -> None:
        if kind == _HEADERS:
            if flags & _PADDED:
                payload = payload[1 : len(payload) - payload[0]]
            if flags & _PRIORITY:
                payload = payload[5:]
            self._headers = payload
            self._headers_end_stream = bool(flags & _END_STREAM)
        else:
            self._headers += payload
        if not flags & _END_HEADERS:
            return
        headers = {_text(k): _text(v) for k, v in self._decoder.decode(self._headers)}
        self._headers = b""
        status = headers.get("grpc-status")
        if status is not None and status != "0":
            message = headers.get("grpc-message", "")
            self._end(f"error: grpc-status {status}: {message}")
        elif self._headers_end_stream:
            self._end("ended by the gateway")

    def _end(self, status: str) -> None:
        if self._stats.status in ("ok", "connecting"):
            self._stats.status = status[:300]
        if self._transport is not None:
            self._transport.close()


async def one_raw_client(
    args: argparse.Namespace, request: bytes, stats: ClientStats, measure_from: float
) -> None:
    """One client's call over :class:`RawVStream`, until cancelled or ended."""
    loop = asyncio.get_running_loop()
    protocol = RawVStream(args.port, request, stats, measure_from, args.gap_threshold)
    protocol.started = time.monotonic()
    stats.status = "connecting"
    try:
        transport, _ = await loop.create_connection(lambda: protocol, "127.0.0.1", args.port)
    except OSError as exc:
        stats.status = f"error: connect: {exc}"[:300]
        return
    stats.status = "ok"
    try:
        await protocol.done
    finally:
        protocol.leaving = True
        transport.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    request = build_request(args.keyspace, args.heartbeat_interval)
    stats = [ClientStats() for _ in range(args.clients)]
    # Shared wall-clock instants, turned into this process's monotonic clock.
    offset = time.monotonic() - time.time()
    start = args.start_at + offset
    measure_from = args.measure_from + offset
    end = args.end_at + offset
    print(json.dumps({"event": "ready"}), flush=True)
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    cpu0 = time.process_time()
    client = one_raw_client if args.impl == "raw" else one_client
    tasks = [asyncio.create_task(client(args, request, s, measure_from)) for s in stats]
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    window_end = time.monotonic()
    cpu_window = time.process_time() - cpu0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    clients = []
    for s in stats:
        if s.status == "ok" and s.last_in_window is not None:
            # Silence until the window's end counts as a gap too.
            s.max_gap = max(s.max_gap, window_end - s.last_in_window)
        elif s.status == "ok":
            s.max_gap = window_end - measure_from
        clients.append(
            {
                "status": s.status,
                "first_s": s.first_s,
                "first_data_s": s.first_data_s,
                "responses": s.responses,
                "heartbeats": s.heartbeats,
                "events": s.events,
                "total_responses": s.total_responses,
                "max_gap_s": s.max_gap,
                "gaps_over_threshold": s.big_gaps,
            }
        )
    return {
        "clients": clients,
        "window_s": window_end - measure_from,
        "cpu_s": cpu_window,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--keyspace", default="commerce")
    p.add_argument("--heartbeat-interval", type=int, default=1)
    p.add_argument("--start-at", type=float, required=True, help="time.time() to start")
    p.add_argument("--measure-from", type=float, required=True, help="time.time()")
    p.add_argument("--end-at", type=float, required=True, help="time.time() to stop")
    p.add_argument("--gap-threshold", type=float, default=2.0)
    p.add_argument(
        "--impl",
        choices=("raw", "grpclib"),
        default="raw",
        help="raw: plain HTTP/2 frames (cheap per response); grpclib: grpclib's client",
    )
    args = p.parse_args(argv)
    # 1,000 connections need more than the usual 1,024 descriptors with room to spare.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
