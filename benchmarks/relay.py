"""The relay ceiling: a trivial ``/vtgateservice.Vitess/VStream`` that forwards one tablet.

Same stack as the gateway (grpclib hosted by Trio through trio-asyncio, via
``vsmux.transport.open_grpc_server``) and, by default, the same messages
and writes: each tablet response is cut into one client response per unit,
as the gateway sends them (a unit ends after COMMIT, DDL, OTHER, ROLLBACK,
COPY_COMPLETED, JOURNAL or HEARTBEAT; trailing events of a transaction that
continues in the next tablet response go out as a response of their own, as
a piece), and the responses of one tablet response leave in one
``vsmux.transport._batched_send.send_batch`` call. The cut is the cheapest
correct one: ``vsmux.wire.split_response`` and ``type_indexes`` (C loops when
built) find the unit ends, and a ``ResponsePacker`` (C) joins each unit's
events into a body. No merge, no grouping, no GTID -> VGTID, no renames and
no Trio crossing. Whatever rate this reaches is what the transport allows one
stream on this machine; the gateway is reported as a fraction of it.

``--mode forward`` is the relay before one unit per response: each tablet
response body goes to the client untouched with ``send_message`` (eight
transactions per response in the merge benchmark's default workload). It is
kept for the before/after record.

Prints ``{"ready": true, "port": N}`` once listening. Stops on SIGINT or after
``--max-seconds``.

Usage: python benchmarks/relay.py --tablet 127.0.0.1:PORT [--shard 0] [--mode units|forward]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpclib.const
from grpclib.client import Channel
from grpclib.server import Server, Stream

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events import RawMessage

from vsmux.core.settings import GatewaySettings
from vsmux.proto import binlogdata, query, topodata, vtgate
from vsmux.topology import split_address
from vsmux.transport._batched_send import send_batch
from vsmux.wire import ResponsePacker, split_response
from vsmux.wire.frames import type_indexes, type_mask

_T = binlogdata.VEventType
#: Events that end a unit: the gateway's terminators (COMMIT, DDL, OTHER,
#: ROLLBACK) and the events it sends as units of their own.
UNIT_ENDS = type_mask(
    int(t)
    for t in (
        _T.COMMIT,
        _T.DDL,
        _T.OTHER,
        _T.ROLLBACK,
        _T.COPY_COMPLETED,
        _T.JOURNAL,
        _T.HEARTBEAT,
    )
)


class Relay:
    def __init__(self, host: str, port: int, keyspace: str, shard: str, mode: str) -> None:
        self.host = host
        self.port = port
        self.mode = mode
        # Created on first use: a grpclib channel binds to the running loop.
        self.channel: Channel | None = None
        self.keyspace = keyspace
        self.shard = shard

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return {
            "/vtgateservice.Vitess/VStream": grpclib.const.Handler(
                self.vstream,
                grpclib.const.Cardinality.UNARY_STREAM,
                vtgate.VStreamRequest,
                RawMessage,
            )
        }

    async def vstream(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        request = binlogdata.VStreamRequest(
            target=query.Target(
                keyspace=self.keyspace, shard=self.shard, tablet_type=topodata.TabletType.PRIMARY
            ),
            position="current",
            filter=binlogdata.Filter(rules=[binlogdata.Rule(match="/.*")]),
        )
        if self.channel is None:
            self.channel = Channel(self.host, self.port)
        async with self.channel.request(
            "/queryservice.Query/VStream",
            grpclib.const.Cardinality.UNARY_STREAM,
            binlogdata.VStreamRequest,
            RawMessage,
        ) as upstream:
            await upstream.send_message(request, end=True)
            if self.mode == "forward":
                while True:
                    body = await upstream.recv_message()
                    if body is None:
                        return
                    await stream.send_message(RawMessage(body))
            # One response per unit, one write per tablet response.
            packer = ResponsePacker(GatewaySettings().max_response_bytes)
            while True:
                body = await upstream.recv_message()
                if body is None:
                    return
                frames = split_response(body)
                start = 0
                for end in type_indexes(frames, UNIT_ENDS):
                    packer.add_unit(frames[start : end + 1])
                    start = end + 1
                if start < len(frames):
                    packer.add_unit(frames[start:])  # a piece; the rest comes next
                await send_batch(stream, packer.take())


async def _serve(relay: Relay, hosted: Any, sleep: Any, max_seconds: float) -> None:
    try:
        async with hosted(relay) as port:
            print(json.dumps({"ready": True, "port": port}), flush=True)
            await sleep(max_seconds)
    finally:
        if relay.channel is not None:
            relay.channel.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tablet", required=True, help="host:port of a replay tablet")
    p.add_argument("--keyspace", default="bench")
    p.add_argument("--shard", default="0")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=900.0)
    p.add_argument("--loop", choices=["trio", "asyncio"], default="trio")
    p.add_argument(
        "--mode",
        choices=["units", "forward"],
        default="units",
        help="units: one response per unit, batched writes (as the gateway); "
        "forward: tablet responses untouched (the relay before one unit per response)",
    )
    args = p.parse_args(argv)
    host, port = split_address(args.tablet)
    relay = Relay(host, port, args.keyspace, args.shard, args.mode)
    try:
        if args.loop == "trio":
            import trio
            import trio_asyncio

            from vsmux.transport import open_grpc_server

            @contextlib.asynccontextmanager
            async def hosted(servable: Relay) -> AsyncIterator[int]:
                async with open_grpc_server([servable], port=args.port) as (_, bound):
                    yield bound

            async def trio_main() -> None:
                async with trio_asyncio.open_loop():
                    await _serve(relay, hosted, trio.sleep, args.max_seconds)

            trio.run(trio_main)
        else:
            import asyncio

            @contextlib.asynccontextmanager
            async def plain(servable: Relay) -> AsyncIterator[int]:
                server = Server([servable])
                await server.start("127.0.0.1", args.port)
                try:
                    yield server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                finally:
                    server.close()

            asyncio.run(_serve(relay, plain, asyncio.sleep, args.max_seconds))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
