"""An etcd v3 client over grpclib, behind a Trio face.

Only what reading (and, for the simulated cluster, writing) a Vitess
topology needs: read every key under a prefix at one revision, put and
delete keys, and watch a prefix from a revision. The messages are generated
from etcd's own protos (``protos/etcdserverpb.proto``, ``protos/mvccpb.proto``,
cut down to these calls), so this speaks the same wire as etcd's Go client.

Crossings: a unary call is one ``aio_as_trio`` crossing; a watch runs as one
asyncio task that hands each ``WatchResponse``'s changes over a
:class:`Handoff`, so the Trio side wakes once per batch of queued responses,
never per key.

Errors leave as :class:`VStreamError`: UNAVAILABLE for an etcd that cannot
be reached or drops the connection, etcd's own status otherwise, and
UNAVAILABLE for a watch that etcd cancels (a compacted start revision, a
server going away), since the caller's answer to all of them is the same:
read everything again and watch from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import trio
import trio_asyncio
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Cardinality

from vsmux.errors import Code, VStreamError
from vsmux.proto import etcdserverpb, mvccpb
from vsmux.topology import AddressError, split_address
from vsmux.transport._beside import call_beside
from vsmux.transport._handoff import Handoff
from vsmux.transport._status import error_of

__all__ = [
    "ETCD_CALL_TIMEOUT_SECONDS",
    "ETCD_KEEPALIVE_SECONDS",
    "WATCH_RESPONSES_AHEAD",
    "EtcdClient",
    "KeyChange",
    "KeySnapshot",
    "open_etcd",
    "prefix_end",
]

#: A unary call (Range, Put, DeleteRange) that takes longer fails UNAVAILABLE.
ETCD_CALL_TIMEOUT_SECONDS = 5.0
#: A connection is pinged after this long without a frame, and dropped if the
#: ping is not answered within as long again: a watch on a partitioned etcd
#: (no reset, no data) fails instead of waiting for ever. etcd refuses pings
#: more often than its --grpc-keepalive-min-time (5 s by default).
ETCD_KEEPALIVE_SECONDS = 10.0
#: Watch responses queued for the Trio side before the asyncio task waits:
#: topology changes are small and rare, this only bounds a burst.
WATCH_RESPONSES_AHEAD = 16

_RANGE = "/etcdserverpb.KV/Range"
_PUT = "/etcdserverpb.KV/Put"
_DELETE_RANGE = "/etcdserverpb.KV/DeleteRange"
_WATCH = "/etcdserverpb.Watch/Watch"

R = TypeVar("R")


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with ``prefix``"."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # every key
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """Every key under a prefix, as of ``revision``."""

    revision: int
    values: dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class KeyChange:
    """One key put (``value`` set) or deleted (``value`` None) at ``revision``."""

    key: bytes
    value: bytes | None
    revision: int


@dataclass(frozen=True, slots=True)
class _WatchEnd:
    failure: BaseException | None


_WatchItem = list[KeyChange] | _WatchEnd


class EtcdClient:
    """Calls to one etcd server (``host:port``) from Trio.

    Made by :func:`open_etcd`, which closes its connection on leaving.
    """

    def __init__(self, address: str, channel: Channel) -> None:
        self.address = address
        self._channel = channel

    def _error(self, exc: BaseException) -> VStreamError:
        if isinstance(exc, VStreamError):
            return exc
        where = f"etcd at {self.address}"
        if isinstance(exc, TimeoutError):
            return VStreamError(
                Code.UNAVAILABLE,
                f"{where} did not answer within {ETCD_CALL_TIMEOUT_SECONDS:g}s",
            )
        # A connection failure reads "connection to etcd at ... failed or dropped";
        # etcd's own status messages do not say who answered, so they get the name.
        error = error_of(exc, where, peer_kind="gateway")
        if isinstance(exc, GRPCError):
            return VStreamError(error.code, f"{where}: {error.message}")
        return error

    async def _unary(self, path: str, request: Any, reply_type: type[R]) -> R:
        async def call() -> R:
            reply: R = await asyncio.wait_for(
                self._call(path, request, reply_type), ETCD_CALL_TIMEOUT_SECONDS
            )
            return reply

        try:
            reply: R = await trio_asyncio.aio_as_trio(call)()
            return reply
        except (trio.Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise self._error(exc) from None

    async def _call(self, path: str, request: Any, reply_type: type[R]) -> R:
        stream: Any = self._channel.request(
            path, Cardinality.UNARY_UNARY, type(request), reply_type
        )
        async with stream:
            await stream.send_message(request, end=True)
            reply: R = await stream.recv_message()
            await stream.recv_trailing_metadata()
        return reply

    async def get_prefix(self, prefix: bytes) -> KeySnapshot:
        """Every key starting with ``prefix`` and its value, at one revision."""
        request = etcdserverpb.RangeRequest(key=prefix, range_end=prefix_end(prefix))
        reply = await self._unary(_RANGE, request, etcdserverpb.RangeResponse)
        revision = reply.header.revision if reply.header is not None else 0
        return KeySnapshot(revision, {kv.key: kv.value for kv in reply.kvs})

    async def put(self, key: bytes, value: bytes) -> int:
        """Store ``value`` at ``key``; the revision of the write."""
        request = etcdserverpb.PutRequest(key=key, value=value)
        reply = await self._unary(_PUT, request, etcdserverpb.PutResponse)
        return reply.header.revision if reply.header is not None else 0

    async def delete(self, key: bytes, *, prefix: bool = False) -> int:
        """Delete ``key`` (every key starting with it, with ``prefix``); how many went."""
        request = etcdserverpb.DeleteRangeRequest(
            key=key, range_end=prefix_end(key) if prefix else b""
        )
        reply = await self._unary(_DELETE_RANGE, request, etcdserverpb.DeleteRangeResponse)
        return int(reply.deleted)

    @asynccontextmanager
    async def watch_prefix(
        self, prefix: bytes, start_revision: int
    ) -> AsyncIterator[Callable[[], Awaitable[list[KeyChange]]]]:
        """Watch every key under ``prefix`` from ``start_revision`` on.

        Yields ``next_changes``: each call returns the changes that arrived
        since the last call (at least one, in revision order), waiting for
        them, and raises VStreamError (UNAVAILABLE) once the watch ends for
        any reason. Leaving the block cancels the watch's call.
        """
        handoff: Handoff[_WatchItem] = Handoff(WATCH_RESPONSES_AHEAD)
        ended: list[_WatchEnd] = []

        async def next_changes() -> list[KeyChange]:
            while not ended:
                changes: list[KeyChange] = []
                for item in await handoff.get_all_in_trio():
                    if isinstance(item, _WatchEnd):
                        ended.append(item)
                    else:
                        changes.extend(item)
                if changes:
                    return changes
            failure = ended[0].failure
            if failure is None:
                raise VStreamError(Code.UNAVAILABLE, f"etcd at {self.address} ended the watch")
            raise self._error(failure)

        request = etcdserverpb.WatchRequest(
            create_request=etcdserverpb.WatchCreateRequest(
                key=prefix, range_end=prefix_end(prefix), start_revision=start_revision
            )
        )
        async with call_beside(handoff, self._run_watch, request, handoff):
            yield next_changes

    async def _run_watch(
        self, request: etcdserverpb.WatchRequest, handoff: Handoff[_WatchItem]
    ) -> None:
        """asyncio: run the watch call, handing over each response's changes, then the end.

        Only ever awaits asyncio things (grpclib and the hand-off's futures),
        so cancelling this task always ends it.
        """
        failure: BaseException | None = None
        try:
            stream: Any = self._channel.request(
                _WATCH,
                Cardinality.STREAM_STREAM,
                etcdserverpb.WatchRequest,
                etcdserverpb.WatchResponse,
            )
            async with stream:
                # The send side stays open: etcd ends a watch stream whose client
                # has finished sending.
                await stream.send_message(request)
                while (response := await stream.recv_message()) is not None:
                    if response.canceled:
                        reason = response.cancel_reason or "cancelled by the server"
                        if response.compact_revision:
                            reason += f" (compacted up to revision {response.compact_revision})"
                        failure = VStreamError(
                            Code.UNAVAILABLE, f"etcd at {self.address} ended the watch: {reason}"
                        )
                        break
                    changes = [_change(event) for event in response.events]
                    if changes:
                        await handoff.put_in_asyncio(changes)
                else:
                    await stream.recv_trailing_metadata()
        except trio.BrokenResourceError:
            return  # the Trio side left; it cancels this task too
        except Exception as exc:  # every transport and server failure ends the watch
            failure = exc
        try:
            await handoff.put_in_asyncio(_WatchEnd(failure))
        except trio.BrokenResourceError:
            pass


def _change(event: mvccpb.Event) -> KeyChange:
    kv = event.kv if event.kv is not None else mvccpb.KeyValue()
    deleted = event.type == mvccpb.EventEventType.DELETE
    return KeyChange(kv.key, None if deleted else kv.value, kv.mod_revision)


@asynccontextmanager
async def open_etcd(
    address: str, *, keepalive: float = ETCD_KEEPALIVE_SECONDS
) -> AsyncIterator[EtcdClient]:
    """A client for the etcd server at ``address`` (``host:port``), closed on leaving.

    Connecting happens at the first call, so this never fails for an etcd
    that is down; its calls do (UNAVAILABLE). An idle connection is pinged
    every ``keepalive`` seconds and dropped (its calls failing UNAVAILABLE)
    when a ping goes unanswered for as long. Must run inside
    :func:`~vsmux.transport.asyncio_loop`. INVALID_ARGUMENT for an address
    that is not ``host:port``.
    """
    try:
        host, port = split_address(address)
    except AddressError:
        raise VStreamError(
            Code.INVALID_ARGUMENT, f"etcd address {address!r} must look like host:port"
        ) from None
    config = Configuration(
        _keepalive_time=keepalive,
        _keepalive_timeout=keepalive,
        _keepalive_permit_without_calls=False,
        # Ping an idle watch for as long as it runs, not just twice.
        _http2_max_pings_without_data=0,
        _http2_min_sent_ping_interval_without_data=keepalive,
    )
    channel = Channel(host, port, config=config)
    try:
        yield EtcdClient(address, channel)
    finally:
        channel.close()
