"""A :class:`~vsmux.mux.ShardSource` over gRPC to a vttablet.

Speaks ``/queryservice.Query/VStream`` and ``/queryservice.Query/StreamHealth``
to a real vttablet or a gRPC-served simulated one. VStream responses are
received as raw bytes and split into frames with
:func:`vsmux.wire.split_response`: events are never decoded here.

How a stream runs: one asyncio coroutine owns the grpclib call, splits each
tablet response into frames and hands them over a
:class:`~vsmux.transport._handoff.Handoff` holding at most ``RESPONSES_AHEAD``
(HTTP/2 flow control holds the rest at the tablet, within the channel's
bounded windows); the Trio side takes everything queued at once, with no
crossing between the loops. The only crossing is the one that starts the
call. Leaving the ``async with`` cancels that coroutine, which resets the
HTTP/2 stream: the tablet stops sending.

Failures become :class:`VStreamError` through
:func:`vsmux.transport.error_of` (the one table): the tablet's own code (the
gRPC status number) and a message prefixed with the tablet alias, address and
shard. Connection failures and stream resets are UNAVAILABLE; so is a
connect that takes longer than ``connect_timeout``.

Channels are pooled per address by :class:`TabletChannels`: streams to a
tablet share HTTP/2 connections, up to ``STREAMS_PER_CONNECTION`` streams per
connection, each connection with room in its window for all of its streams.
The first stream to need a connection makes it; the others wait for that one
connect and all go on at once when it is up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Cardinality

from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, query
from vsmux.topology import TabletInfo, split_address
from vsmux.transport import _frame_repr as frame_repr
from vsmux.transport._beside import call_beside
from vsmux.transport._codec import RawCodec, RawMessage
from vsmux.transport._handoff import Handoff
from vsmux.transport._status import error_of
from vsmux.transport._tls import ClientTls
from vsmux.wire import Frame, FrameError, split_response

__all__ = [
    "BUSY_STREAM_WINDOW_BYTES",
    "BUSY_TABLET_STREAMS",
    "CONNECTION_WINDOW_PER_STREAM",
    "CONNECT_TIMEOUT_SECONDS",
    "RESPONSES_AHEAD",
    "STREAMS_PER_CONNECTION",
    "TABLET_STREAM_WINDOW_BYTES",
    "GrpcTabletSource",
    "TabletChannels",
    "TabletConnection",
    "open_tablet_channels",
]

T = TypeVar("T")
R = TypeVar("R")

# Tablet responses received ahead of the streamer. The streamer takes all that
# are queued in one wakeup, so while it works on one batch the next ones are
# split and waiting; when it falls behind it catches up with a wakeup per
# RESPONSES_AHEAD responses rather than per response.
RESPONSES_AHEAD = 4
# ... and at most this many bytes of them (plus the one that crosses it), so a
# stalled stream of full-size vttablet packets (~250 KB each) holds one
# response here beyond what HTTP/2 flow control keeps at the tablet: four
# would add ~64 MB at 64 tablets (measured: a slow client's gateway peaked at
# 316 MB with four, 168 MB with one). Small responses, where the per-response
# wakeup is what costs, still batch four at a time.
RESPONSE_BYTES_AHEAD = 128 * 1024

# How long opening a stream (TCP connect, then writing the HTTP/2 preface and
# the request) may take before the tablet counts as unreachable (UNAVAILABLE,
# retried). A tablet that accepts and then stays silent is not caught here
# (an idle stream is legitimately silent); the gateway's liveness timeout
# ends such a stream.
CONNECT_TIMEOUT_SECONDS = 10.0

# HTTP/2 receive window of each tablet stream. grpclib's default (4 MiB) lets
# every tablet park 4 MiB in the gateway whenever the gateway reads slower
# than the tablet sends (a slow client, or a gateway slower than its tablets):
# 256 MiB for 64 tablets. A busy vttablet sends responses of up to about
# 250 KB (its vstream_packet_size); 512 KiB lets it send the next one while
# the gateway works on the last (with 256 KiB only one fits, and a 1 GB
# transaction moved measurably slower), covers the bandwidth-delay product of
# 1 Gbit/s at 4 ms round trip, and bounds 64 tablets to 32 MiB.
TABLET_STREAM_WINDOW_BYTES = 512 * 1024

# Streams (VStreams and health streams) that share one tablet connection at
# most; more streams to the same tablet open more connections. A connection's
# HTTP/2 receive window is sized from its stream windows
# (CONNECTION_WINDOW_PER_STREAM), so the streams on it can each fill their own
# window at once and none waits for the connection's: when one connection
# carried every stream to a tablet with a smaller connection window, the first
# streams' unread data took all of it and later ones got nothing for many
# seconds (16 clients of one keyspace: half of them stalled for 14 s). Few
# connections matter with many sessions: every connection is a TCP connect,
# an HTTP/2 handshake and a socket the loop polls. With 1,000 clients (8,000
# tablet streams) four streams per connection meant 2,000 connections, set up
# so slowly under load that 1,772 of the 4,000 health streams ran out their
# connect timeout and their sessions restarted those shards; with 64, 128
# connections were up 2.6 s after the burst. 64 stays below the 100
# concurrent streams an h2-based tablet (grpclib's server) accepts on a
# connection; what the gateway holds is bounded per stream either way.
STREAMS_PER_CONNECTION = 64

# A tablet already carrying this many streams is busy: connections opened to
# it from then on give each stream BUSY_STREAM_WINDOW_BYTES instead, the
# smallest window a whole ~250 KB vttablet response fits in. Under more
# streams than it can serve, the gateway works through what their windows let
# the tablets send ahead, stream after stream: at 1,000 clients, 4,000
# VStreams of 512 KiB parked ~2 GB, about 40 s of its work, and clients whose
# streams were late in that queue got nothing in 30 s (238 of 1,000 in one
# run). From 128 streams on at 256 KiB, every client got transactions (from
# 512 on, 26 did not). A tablet with few streams still gives them 512 KiB (a
# 1 GB transaction moved at 30 MB/s with it, 21 MB/s with 256 KiB).
BUSY_TABLET_STREAMS = 128
BUSY_STREAM_WINDOW_BYTES = 256 * 1024

# A connection's receive window, in stream windows per stream it may carry.
# The gateway (h2) returns connection window only once half of it has been
# read, so with a window of just the sum of the stream windows, data read but
# not yet returned plus data not yet read could fill it, and a stream with
# room in its own window would still wait (the tablet then gives what is
# returned to the streams it wakes first). Twice the sum leaves every stream
# its own window whatever the others do; what the gateway holds is still
# bounded by the stream windows.
CONNECTION_WINDOW_PER_STREAM = 2

VSTREAM = "/queryservice.Query/VStream"
STREAM_HEALTH = "/queryservice.Query/StreamHealth"


class TabletChannels:
    """A pool of grpclib channels (HTTP/2 connections) to tablets.

    Each stream takes a place on a connection to its tablet's address with
    :meth:`acquire` and gives it back with :meth:`release`; a connection
    carries at most ``streams_per_connection`` streams, and its receive window
    holds all of their stream windows (``stream_window_bytes`` each) twice
    over, so neither a stream the gateway has stopped reading nor the window
    the gateway has yet to return ever holds up another stream. Connections
    opened to a tablet that already carries ``busy_tablet_streams`` streams
    give each stream ``busy_stream_window_bytes`` instead. The first
    connection to an address stays open while it has streams and after, so
    that a stream that ends and reopens does not reconnect; further ones
    close when their last stream ends. :meth:`close_idle` closes the first
    ones too once nothing uses them (the gateway's memory release calls it
    after its sessions have gone). Connections are made on first use
    (inside asyncio, :meth:`TabletConnection.ready`) and closed by
    :func:`open_tablet_channels` when its block ends. With ``tls`` every
    connection is TLS, the tablet's certificate checked against
    ``tls.server_name`` (default: the tablet's host).
    """

    def __init__(
        self,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        stream_window_bytes: int = TABLET_STREAM_WINDOW_BYTES,
        streams_per_connection: int = STREAMS_PER_CONNECTION,
        busy_tablet_streams: int = BUSY_TABLET_STREAMS,
        busy_stream_window_bytes: int = BUSY_STREAM_WINDOW_BYTES,
        tls: ClientTls | None = None,
    ) -> None:
        if streams_per_connection < 1:
            raise ValueError(f"streams_per_connection must be >= 1, not {streams_per_connection}")
        self.connect_timeout = connect_timeout
        self._pools: dict[str, list[TabletConnection]] = {}
        self._codec = RawCodec()
        self._streams_per_connection = streams_per_connection
        self._busy_tablet_streams = busy_tablet_streams
        self._tls = tls
        self._config = self._configuration(stream_window_bytes)
        self._busy_config = self._configuration(min(stream_window_bytes, busy_stream_window_bytes))

    def _configuration(self, stream_window_bytes: int) -> Configuration:
        return Configuration(
            ssl_target_name_override=self._tls.server_name if self._tls is not None else None,
            http2_stream_window_size=stream_window_bytes,
            http2_connection_window_size=(
                CONNECTION_WINDOW_PER_STREAM * self._streams_per_connection * stream_window_bytes
            ),
        )

    def acquire(self, address: str) -> TabletConnection:
        """A connection to ``host:port`` with room for one more stream. Call from asyncio."""
        pool = self._pools.setdefault(address, [])
        for connection in pool:
            if connection.streams < self._streams_per_connection:
                connection.streams += 1
                return connection
        busy = sum(connection.streams for connection in pool) >= self._busy_tablet_streams
        config = self._busy_config if busy else self._config
        host, port = split_address(address)
        ssl = self._tls.context if self._tls is not None else None
        channel = Channel(host, port, codec=self._codec, config=config, ssl=ssl)
        connection = TabletConnection(channel, streams=1)
        pool.append(connection)
        return connection

    def release(self, address: str, connection: TabletConnection) -> None:
        """Give back a stream's place on ``connection`` (from :meth:`acquire`)."""
        pool = self._pools.get(address, [])
        for index, pooled in enumerate(pool):
            if pooled is connection:
                connection.streams -= 1
                if connection.streams == 0 and index > 0:
                    del pool[index]
                    connection.channel.close()
                return

    def connections(self, address: str) -> list[int]:
        """Streams on each open connection to ``address`` (for metrics and tests)."""
        return [connection.streams for connection in self._pools.get(address, [])]

    def forget_closed_streams(self) -> int:
        """Make each connection's HTTP/2 state drop its closed streams now; returns how many.

        h2 keeps a closed stream's state (its window manager, state machine
        and counters) in the connection until the next stream is opened on
        it. A pooled connection that a burst of clients used and left stays
        idle with all of them, and those small objects, allocated all through
        the burst, keep the allocator's arenas from going back to the system.
        Called by the memory release; reaches into grpclib's connection for
        the h2 one, and drops nothing when that is not where expected.
        """
        dropped = 0
        for pool in self._pools.values():
            for connection in pool:
                protocol = getattr(connection.channel, "_protocol", None)
                h2: Any = getattr(getattr(protocol, "connection", None), "_connection", None)
                streams = getattr(h2, "streams", None)
                if not isinstance(streams, dict):
                    continue
                before = len(streams)
                h2.open_outbound_streams  # noqa: B018 (reading it prunes closed streams)
                dropped += before - len(h2.streams)
        return dropped

    def close_idle(self) -> int:
        """Close every connection that carries no stream; returns how many.

        A connection to a tablet that no session uses any more keeps its
        socket, its grpclib and h2 state and the tasks reading it; made
        during a burst of clients, those objects keep the allocator's arenas
        of that burst resident (BENCHMARKS.md, "Memory after a burst"). The
        next stream to the tablet connects again (:meth:`acquire`). A
        connection that a stream has just acquired counts that stream
        already, so it is never closed under a stream being opened.
        """
        closed = 0
        for address in list(self._pools):
            pool = self._pools[address]
            idle = [connection for connection in pool if connection.streams == 0]
            for connection in idle:
                pool.remove(connection)
                connection.channel.close()
                closed += 1
            if not pool:
                del self._pools[address]
        return closed

    def close(self) -> None:
        for pool in self._pools.values():
            for connection in pool:
                connection.channel.close()
        self._pools.clear()

    def source(self, tablet: TabletInfo) -> GrpcTabletSource:
        return GrpcTabletSource(tablet, self)


class TabletConnection:
    """One pooled HTTP/2 connection (a grpclib channel) and the streams placed on it.

    :meth:`ready` connects it once for every stream that needs it. grpclib
    serializes connecting behind a lock that its waiters pass on one at a
    time, each handover a turn of the asyncio loop; with thousands of tablet
    streams opening at once a turn took 1-2 s, so the last of four streams on
    a connection waited 4 s more after the connection was up, and many such
    streams ran out their connect timeout. Here one future wakes every waiter.
    """

    __slots__ = ("_connecting", "_up", "channel", "streams")

    def __init__(self, channel: Channel, streams: int) -> None:
        self.channel = channel
        self.streams = streams
        self._up = False
        self._connecting: asyncio.Future[BaseException | None] | None = None

    async def ready(self) -> None:
        """Return once the connection is up; the first caller makes it. Call from asyncio.

        Every caller waiting for a connect that fails gets its failure. A
        caller cancelled while it waits leaves the connect to the others; if
        the caller making the connect is cancelled, the waiters ask again and
        the first of them makes it.
        """
        while not self._up:
            pending = self._connecting
            if pending is not None:
                failure = await asyncio.shield(pending)
                if failure is not None:
                    raise failure
                continue
            pending = self._connecting = asyncio.get_running_loop().create_future()
            outcome: BaseException | None = None
            try:
                await self.channel.__connect__()
            except Exception as exc:
                outcome = exc
                raise
            else:
                # A connection lost later is made again by grpclib when a call
                # needs it (behind its own lock: rare, so the slow path will do).
                self._up = True
            finally:
                self._connecting = None
                pending.set_result(outcome)


@asynccontextmanager
async def open_tablet_channels(
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    stream_window_bytes: int = TABLET_STREAM_WINDOW_BYTES,
    *,
    tls: ClientTls | None = None,
) -> AsyncIterator[TabletChannels]:
    """A channel pool that closes its connections when the block ends.

    With ``tls`` every tablet is reached over TLS (vtgate's ``--tablet_grpc_*``).

    Needs a running ``trio_asyncio`` loop.
    """
    frame_repr.install()  # every tablet event arrives in a DATA frame h2 would repr
    channels = TabletChannels(connect_timeout, stream_window_bytes, tls=tls)
    try:
        yield channels
    finally:
        channels.close()


class GrpcTabletSource:
    """One tablet reached over gRPC."""

    def __init__(self, tablet: TabletInfo, channels: TabletChannels) -> None:
        if tablet.address is None:
            raise ValueError(f"tablet {tablet.alias} has no address to reach it by gRPC")
        self._tablet = tablet
        self._address = tablet.address
        self._channels = channels

    @property
    def tablet(self) -> TabletInfo:
        return self._tablet

    def vstream(
        self, request: binlogdata.VStreamRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[list[Frame]]]:
        """Open the tablet's VStream; iterate for frame batches (every response queued, joined)."""
        call = _Call(VSTREAM, request, binlogdata.VStreamRequest, RawMessage, self._frames, len)
        return self._open(call, _FrameBatches)

    def stream_health(
        self,
    ) -> AbstractAsyncContextManager[AsyncIterator[query.StreamHealthResponse]]:
        """Open the tablet's StreamHealth; iterate for its health reports."""
        call = _Call(
            STREAM_HEALTH,
            query.StreamHealthRequest(),
            query.StreamHealthRequest,
            query.StreamHealthResponse,
            _same,
            _weightless,
        )
        return self._open(call, _Replies)

    def _frames(self, body: bytes) -> list[Frame]:
        try:
            return split_response(body)
        except FrameError as exc:
            raise VStreamError(
                Code.INTERNAL,
                f"{self._where()}: the tablet sent a malformed VStream response: {exc}",
            ) from exc

    def _where(self) -> str:
        # Named in every error: which tablet, where, and which shard it serves
        # (a tablet's own messages, such as a position it cannot parse, say none of that).
        tablet = self._tablet
        return f"tablet {tablet.alias} ({self._address}) of {tablet.keyspace}/{tablet.shard}"

    def _error(self, exc: BaseException) -> VStreamError:
        """The VStreamError a transport or tablet failure stands for."""
        return error_of(exc, self._where(), connect_timeout=self._channels.connect_timeout)

    @asynccontextmanager
    async def _open(
        self,
        call: _Call[T],
        replies: Callable[
            [Handoff[T | _End], Callable[[BaseException], VStreamError]], AsyncIterator[R]
        ],
    ) -> AsyncIterator[AsyncIterator[R]]:
        # The asyncio side only ever awaits asyncio things (see _beside).
        handoff: Handoff[T | _End] = Handoff(RESPONSES_AHEAD, RESPONSE_BYTES_AHEAD)
        async with call_beside(handoff, self._call, call, handoff):
            yield replies(handoff, self._error)

    async def _call(self, call: _Call[T], handoff: Handoff[T | _End]) -> None:
        """asyncio: run one server-streaming call, handing over each reply, then the end."""
        failure: BaseException | None = None
        convert, weigh = call.convert, call.weigh
        channels = self._channels
        connection = channels.acquire(self._address)
        try:
            async with asyncio.timeout(channels.connect_timeout):
                await connection.ready()
            request: Any = connection.channel.request(
                call.path, Cardinality.UNARY_STREAM, call.request_type, call.reply_type
            )
            async with request as stream:
                async with asyncio.timeout(channels.connect_timeout):
                    await stream.send_message(call.request, end=True)
                async for reply in stream:
                    await handoff.put_in_asyncio(convert(reply), weigh(reply))
        except trio.BrokenResourceError:
            return  # the Trio side left; it cancels this task too
        except Exception as exc:  # every transport and tablet failure ends the replies
            failure = exc
        finally:
            channels.release(self._address, connection)
        try:
            await handoff.put_in_asyncio(_End(failure))
        except trio.BrokenResourceError:
            pass


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One server-streaming call to a tablet, and how its replies are handed over."""

    path: str
    request: Any
    request_type: type
    reply_type: type
    #: A reply as the Trio side gets it (VStream: split into frames).
    convert: Callable[[Any], T]
    #: A reply's weight for the hand-off's byte budget (VStream: its encoded size).
    weigh: Callable[[Any], int]


@dataclass(frozen=True, slots=True)
class _End:
    """The call is over: normally (``failure`` None) or with this exception."""

    failure: BaseException | None


class _Replies(AsyncIterator[T]):
    """Iterates the replies (no crossing per reply); ends when the call ends.

    Raises the call's failure as a VStreamError once the replies before it
    are consumed.
    """

    def __init__(
        self,
        handoff: Handoff[T | _End],
        translate: Callable[[BaseException], VStreamError],
    ) -> None:
        self._get = handoff.get_in_trio
        self._translate = translate
        self._done = False

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        item = await self._get()
        if isinstance(item, _End):
            self._done = True
            if item.failure is not None:
                raise self._translate(item.failure) from None
            raise StopAsyncIteration
        result: T = item
        return result


class _FrameBatches(AsyncIterator[list[Frame]]):
    """Iterates VStream replies as frame batches; ends when the call ends.

    Every response queued when the streamer asks is joined into one batch
    (responses are cut arbitrarily anyway, and the grouper takes any cut), so
    a streamer that falls behind its tablet catches up with one wakeup rather
    than one per response. Raises the call's failure as a VStreamError once
    the frames before it are consumed.
    """

    def __init__(
        self,
        handoff: Handoff[list[Frame] | _End],
        translate: Callable[[BaseException], VStreamError],
    ) -> None:
        self._get_all = handoff.get_all_in_trio
        self._translate = translate
        self._end: _End | None = None

    async def __anext__(self) -> list[Frame]:
        if self._end is None:
            frames: list[Frame] = []
            for item in await self._get_all():
                if isinstance(item, _End):
                    self._end = item  # always the producer's last item
                elif frames:
                    frames += item
                else:
                    frames = item
            if frames or self._end is None:
                return frames
        if self._end.failure is not None:
            raise self._translate(self._end.failure) from None
        raise StopAsyncIteration


def _weightless(_reply: Any) -> int:
    return 0


def _same(value: T) -> T:
    return value
