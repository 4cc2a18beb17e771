"""The official-proto client: grpcio's sync API with the generated ``Vitess`` stub.

grpcio's sync calls block, so every call runs in a Trio worker thread; the
Trio loop (which also runs the gateway and the simulated tablets under test)
never waits on the network itself. Every call carries a gRPC deadline, and
every wait on the Trio side is bounded.

:class:`StreamReader` keeps a ``VStream`` call open in a thread and hands each
response to the Trio side as it arrives; :func:`execute` makes one
``Execute`` call.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import trio

__all__ = ["StreamReader", "execute", "reading", "vstream_request"]

# The longest any one VStream call of these tests may live (the server side
# ends with DEADLINE_EXCEEDED then, and the test fails instead of hanging).
STREAM_DEADLINE = 45.0
# Bounds the wait for a reader's thread after its call was cancelled.
THREAD_EXIT_TIMEOUT = 5.0


def _target(port: int) -> str:
    return f"127.0.0.1:{port}"


class StreamReader:
    """One ``VStream`` call, read in a worker thread.

    Start :meth:`run` in a nursery. ``responses`` grows as responses arrive
    (decoded by the generated classes, in order, appended on the Trio
    thread); :meth:`wait_for` waits until a predicate on them holds;
    :meth:`stop` cancels the call. A call that ends with an error status
    leaves it in ``error``; one that ends with OK leaves ``error`` None.
    Either way ``ended`` is set.
    """

    #: grpcio channel options (a subclass may set some).
    channel_options: tuple[tuple[str, Any], ...] = ()

    def __init__(
        self,
        official: Any,
        port: int,
        request: Any,
        *,
        deadline: float = STREAM_DEADLINE,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.official = official
        self.port = port
        self.request = request
        self.deadline = deadline
        self.metadata = metadata
        self.responses: list[Any] = []
        self.error: grpc.RpcError | None = None
        self.ended = trio.Event()
        self._progress = trio.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._stopped = False
        self._thread_done = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None

    # -- Trio side ------------------------------------------------------------

    async def run(self) -> None:
        """Read until the server ends the call, :meth:`stop`, or the deadline."""
        self._token = trio.lowlevel.current_trio_token()
        try:
            # Abandoned on cancel: the finally below cancels the call, which
            # is what makes the thread return.
            await trio.to_thread.run_sync(self._read, abandon_on_cancel=True)
        finally:
            self.stop()
            with trio.CancelScope(shield=True), trio.move_on_after(THREAD_EXIT_TIMEOUT):
                # Returns through run_sync_soon too, so every response the
                # reading thread queued before it finished is appended by then.
                await trio.to_thread.run_sync(self._thread_done.wait)
            self.ended.set()
            self._wake()

    def stop(self) -> None:
        """Cancel the call (thread-safe, idempotent)."""
        with self._lock:
            self._stopped = True
            if self._call is not None:
                self._call.cancel()

    async def wait_for(self, pred: Callable[[list[Any]], bool], timeout: float = 15.0) -> list[Any]:
        """Wait until ``pred(responses)`` holds; fail if the call ends first."""
        with trio.fail_after(timeout):
            while not pred(self.responses):
                if self.ended.is_set():
                    raise AssertionError(f"stream ended first: {self.error!r}")
                await self._progress.wait()
        return self.responses

    async def wait_ended(self, timeout: float = 15.0) -> None:
        """Wait until the call is over, whatever way it ended."""
        with trio.fail_after(timeout):
            await self.ended.wait()

    def _wake(self) -> None:
        progress, self._progress = self._progress, trio.Event()
        progress.set()

    def _arrived(self, response: Any) -> None:
        self.responses.append(response)
        self._wake()

    # -- worker thread -------------------------------------------------------

    def _to_trio(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the Trio thread; callbacks run in the order sent."""
        token = self._token
        assert token is not None
        try:
            token.run_sync_soon(callback, *args)
        except trio.RunFinishedError:
            pass  # the test is over; nobody is waiting

    def _read(self) -> None:
        try:
            options = list(self.channel_options)
            with grpc.insecure_channel(_target(self.port), options=options) as channel:
                stub = self.official.vtgateservice_grpc.VitessStub(channel)
                call = stub.VStream(self.request, timeout=self.deadline, metadata=self.metadata)
                with self._lock:
                    self._call = call
                    if self._stopped:
                        call.cancel()
                try:
                    for response in call:
                        # Appended on the Trio thread, so test code there sees
                        # the list change only between its own awaits.
                        self._to_trio(self._arrived, response)
                except grpc.RpcError as exc:
                    cancelled_by_us = self._stopped and exc.code() == grpc.StatusCode.CANCELLED
                    if not cancelled_by_us:
                        self.error = exc
        finally:
            self._thread_done.set()
            self._to_trio(self._wake)


async def execute(
    official: Any,
    port: int,
    sql: str,
    *,
    target: str = "",
    metadata: tuple[tuple[str, str], ...] = (),
    timeout: float = 5.0,
) -> Any:
    """One ``Execute`` call: ``sql`` with session ``target_string`` ``target``.

    Returns the ``vtgate.ExecuteResponse``; a gRPC error status raises
    ``grpc.RpcError``.
    """
    vtgate = official.vtgate
    request = vtgate.ExecuteRequest(
        session=vtgate.Session(target_string=target, autocommit=True),
        query=official.query.BoundQuery(sql=sql),
    )

    def call() -> Any:
        with grpc.insecure_channel(_target(port)) as channel:
            stub = official.vtgateservice_grpc.VitessStub(channel)
            return stub.Execute(request, timeout=timeout, metadata=metadata)

    return await trio.to_thread.run_sync(call)


def vstream_request(
    official: Any, *shard_gtids: tuple[str, str, str] | Any, flags: Any = None
) -> Any:
    """A ``vtgate.VStreamRequest`` for ``(keyspace, shard, gtid)`` triples or ShardGtids."""
    b = official.binlogdata
    entries = [
        b.ShardGtid(keyspace=sg[0], shard=sg[1], gtid=sg[2]) if isinstance(sg, tuple) else sg
        for sg in shard_gtids
    ]
    request = official.vtgate.VStreamRequest(vgtid=b.VGtid(shard_gtids=entries))
    if flags is not None:
        request.flags.CopyFrom(flags)
    return request


@asynccontextmanager
async def reading(
    official: Any, port: int, request: Any, **options: Any
) -> AsyncIterator[StreamReader]:
    """A :class:`StreamReader` running for the ``async with`` body, stopped after it."""
    async with trio.open_nursery() as nursery:
        reader = StreamReader(official, port, request, **options)
        nursery.start_soon(reader.run)
        try:
            yield reader
        finally:
            reader.stop()
