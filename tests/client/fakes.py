"""A scripted VStream server for the tail loop tests (no network)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import trio

from tests.client.events import response, transaction
from vsmux.client.checkpoint import CheckpointStore
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, vtgate

END = "end"  # the server ends the stream with OK
HANG = "hang"  # the server sends nothing more

Item = vtgate.VStreamResponse | VStreamError | str


def unavailable(message: str = "tablet went away") -> VStreamError:
    return VStreamError(Code.UNAVAILABLE, message)


class ScriptedStream:
    def __init__(self, items: Sequence[Item]) -> None:
        self._items = list(items)

    async def receive(self) -> vtgate.VStreamResponse | None:
        await trio.lowlevel.checkpoint()
        item = self._items.pop(0) if self._items else HANG
        if item == HANG:
            await trio.sleep_forever()
        if item == END:
            return None
        if isinstance(item, VStreamError):
            raise item
        assert isinstance(item, vtgate.VStreamResponse)
        return item


class ScriptedServer:
    """Each connect takes the next script; a script that is a VStreamError
    fails the connect itself. Requests are recorded."""

    def __init__(self, *scripts: Sequence[Item] | VStreamError) -> None:
        self.scripts = list(scripts)
        self.requests: list[vtgate.VStreamRequest] = []
        self.open_calls = 0

    def __call__(
        self, request: vtgate.VStreamRequest
    ) -> AbstractAsyncContextManager[ScriptedStream]:
        self.requests.append(request)
        script = self.scripts.pop(0) if self.scripts else [HANG]
        return self._open(script)

    @asynccontextmanager
    async def _open(self, script: Sequence[Item] | VStreamError) -> AsyncIterator[ScriptedStream]:
        await trio.lowlevel.checkpoint()
        if isinstance(script, VStreamError):
            raise script
        self.open_calls += 1
        try:
            yield ScriptedStream(script)
        finally:
            self.open_calls -= 1


class LogServer:
    """Serves transactions 1..n of shard -80 from the request's position.

    Transaction k has gtid ``MySQL56/u:1-k``; a request at ``1-k`` gets k+1
    onwards (each split over two responses), then ``tail`` (default: END).
    """

    def __init__(self, n: int, rows: int = 2, tail: Sequence[Item] = (END,)) -> None:
        self.n = n
        self.rows = rows
        self.tail = list(tail)
        self.starts: list[int] = []

    def __call__(
        self, request: vtgate.VStreamRequest
    ) -> AbstractAsyncContextManager[ScriptedStream]:
        assert request.vgtid is not None
        gtid = request.vgtid.shard_gtids[0].gtid
        start = 0 if gtid in ("current", "") else int(gtid.rsplit("-", 1)[1])
        self.starts.append(start)
        items: list[Item] = []
        for k in range(start + 1, self.n + 1):
            events = transaction(k, rows=self.rows, with_field=(k == start + 1))
            items += [response(events[:2]), response(events[2:])]
        return ScriptedServer([*items, *self.tail])(request)


class Crash(Exception):
    """Stands in for the process dying at a chosen point."""


class CrashingStore(CheckpointStore):
    """A real store whose ``crash_at``-th save dies before committing."""

    def __init__(self, path: Any, crash_at: int | None) -> None:
        super().__init__(path)
        self.saves = 0
        self.crash_at = crash_at

    def save(self, client_id: str, vgtid: binlogdata.VGtid) -> None:
        self.saves += 1
        if self.saves == self.crash_at:
            raise Crash(f"killed before checkpoint {self.saves}")
        super().save(client_id, vgtid)


class WatchedIO(io.StringIO):
    """A text buffer a test can wait on: ``changed`` fires on every write."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = trio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.changed.set()
        self.changed = trio.Event()
        return written

    async def wait_for(self, text: str) -> None:
        while text not in self.getvalue():
            await self.changed.wait()


class CrashingOutput(WatchedIO):
    """Output that dies on its ``crash_at``-th write, before writing."""

    def __init__(self, crash_at: int | None) -> None:
        super().__init__()
        self.writes = 0
        self.crash_at = crash_at

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes == self.crash_at:
            raise Crash(f"killed before write {self.writes}")
        return super().write(text)
