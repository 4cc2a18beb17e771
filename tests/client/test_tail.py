"""The tail loop against scripted servers: output, checkpoints, reconnects, exits."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.client.events import KS, E, response, row_event, simple, transaction, vgtid, vgtid_event
from tests.client.fakes import (
    END,
    HANG,
    Crash,
    CrashingOutput,
    CrashingStore,
    LogServer,
    ScriptedServer,
    unavailable,
)
from vsmux.client.checkpoint import CheckpointStore
from vsmux.client.request import StreamOptions
from vsmux.client.retry import Backoff
from vsmux.client.tail import EXIT_ERROR, EXIT_OK, EXIT_USAGE, TailConfig, run_tail
from vsmux.errors import Code, VStreamError

SEED = 3


def config(**kw: object) -> TailConfig:
    stream = kw.pop("stream", StreamOptions(keyspace=KS))
    return TailConfig(stream=stream, quiet=bool(kw.pop("quiet", False)), **kw)  # type: ignore[arg-type]


def rows_of(out: str) -> list[int]:
    return [json.loads(line)["data"]["id"] for line in out.splitlines()]


def delays(n: int) -> list[float]:
    backoff = Backoff(rng=random.Random(SEED))
    return [backoff.next_delay() for _ in range(n)]


async def tail(server: object, cfg: TailConfig | None = None, store=None, out=None):  # type: ignore[no-untyped-def]
    out = io.StringIO() if out is None else out
    err = io.StringIO()
    status = await run_tail(
        cfg or config(),
        server,  # type: ignore[arg-type]
        out,
        err,
        store=store,
        backoff=Backoff(rng=random.Random(SEED)),
        wall=lambda: 1_700_000_010.0,
    )
    return status, out.getvalue(), err.getvalue()


async def test_prints_rows_checkpoints_and_ends_on_ok(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.db")
    events = transaction(1, rows=2, with_field=True) + transaction(2, rows=1)
    server = ScriptedServer(
        [
            response([vgtid_event("-80", ("-80", "MySQL56/u:1-0")), simple(E.OTHER)]),
            response(events[:3]),
            response(events[3:]),
            END,
        ]
    )
    status, out, err = await tail(server, store=store)
    assert status == EXIT_OK
    assert rows_of(out) == [100, 101, 200]
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 0]
    assert lines[2]["position"][0]["gtid"] == "MySQL56/u:1-2"
    assert lines[0]["ts"] == 1_700_000_000
    assert store.load("vsmux-tail") == vgtid(("-80", "MySQL56/u:1-2"))
    assert "the server ended the stream" in err
    [request] = server.requests
    assert request.vgtid == vgtid(("", "current"))


async def test_first_vgtid_is_checkpointed_before_any_transaction(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.db")
    server = ScriptedServer(
        [response([vgtid_event("-80", ("-80", "MySQL56/u:1-7")), simple(E.OTHER)]), END]
    )
    assert (await tail(server, store=store))[0] == EXIT_OK
    assert store.load("vsmux-tail") == vgtid(("-80", "MySQL56/u:1-7"))


async def test_reconnects_from_last_delivered_transaction(
    autojump_clock: trio.testing.MockClock,
) -> None:
    one = transaction(1, rows=1, with_field=True)
    two = transaction(2, rows=3, with_field=True)
    server = ScriptedServer(
        [response(one), response(two[:3]), unavailable("shard -80 lost its primary")],
        unavailable("connect refused"),
        [response(two), END],
    )
    start = trio.current_time()
    status, out, err = await tail(server)
    assert status == EXIT_OK
    assert rows_of(out) == [100, 200, 201, 202]  # the partial transaction is never printed
    assert [r.vgtid for r in server.requests] == [
        vgtid(("", "current")),
        vgtid(("-80", "MySQL56/u:1-1")),
        vgtid(("-80", "MySQL56/u:1-1")),
    ]
    assert trio.current_time() - start == pytest.approx(sum(delays(2)))
    assert "shard -80 lost its primary; reconnecting in" in err
    assert "from commerce/-80@1-1" in err


async def test_backoff_resets_after_progress(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer(
        unavailable(),
        [response(transaction(1, with_field=True)), unavailable()],
        [END],
    )
    start = trio.current_time()
    assert (await tail(server))[0] == EXIT_OK
    first = delays(1)[0]
    # The second failure came after a response, so it waits a first-step delay again.
    second = Backoff(rng=random.Random(SEED))
    second.next_delay()
    second.reset()
    assert trio.current_time() - start == pytest.approx(first + second.next_delay())


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (Code.INVALID_ARGUMENT, EXIT_USAGE),
        (Code.NOT_FOUND, EXIT_ERROR),
        (Code.INTERNAL, EXIT_ERROR),
        (Code.PERMISSION_DENIED, EXIT_ERROR),
    ],
)
async def test_non_retryable_errors_stop_with_the_servers_message(code: Code, status: int) -> None:
    server = ScriptedServer(
        [response(transaction(1, with_field=True)), VStreamError(code, "keyspace nope not found")]
    )
    got, out, err = await tail(server, config(quiet=True))
    assert got == status
    assert rows_of(out) == [100]
    assert f"vsmux tail: {code.name}: keyspace nope not found" in err
    assert len(server.requests) == 1


async def test_row_without_field_stops_with_a_clear_error() -> None:
    server = ScriptedServer([response([simple(E.BEGIN), row_event(after=[b"1", b"a"])])])
    status, out, err = await tail(server)
    assert status == EXIT_ERROR and out == ""
    assert "ROW for table commerce.customer on shard commerce/-80" in err


async def test_heartbeat_silence_reconnects(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer([response([simple(E.HEARTBEAT, "")]), HANG], [END])
    cfg = config(stream=StreamOptions(keyspace=KS, heartbeat=2))
    start = trio.current_time()
    status, _, err = await tail(server, cfg)
    assert status == EXIT_OK
    assert trio.current_time() - start == pytest.approx(6 + delays(1)[0])
    assert "nothing received for 6s although heartbeats were asked every 2s" in err
    assert server.requests[0].flags is not None
    assert server.requests[0].flags.heartbeat_interval == 2


async def test_max_events_stops_after_exactly_n_lines(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.db")
    server = LogServer(5, rows=2, tail=[HANG])
    status, out, _ = await tail(server, config(max_events=3), store=store)
    assert status == EXIT_OK
    assert rows_of(out) == [100, 101, 200]
    # Transaction 2 was cut short: not checkpointed, printed again next time.
    assert store.load("vsmux-tail") == vgtid(("-80", "MySQL56/u:1-1"))
    status, out, _ = await tail(LogServer(5, rows=2, tail=[HANG]), config(max_events=4), store)
    assert rows_of(out) == [200, 201, 300, 301]
    assert store.load("vsmux-tail") == vgtid(("-80", "MySQL56/u:1-3"))


async def test_max_seconds(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    status, _, _ = await tail(ScriptedServer([HANG]), config(max_seconds=7.5))
    assert status == EXIT_OK
    assert trio.current_time() - start == 7.5


async def test_progress_lines_on_stderr(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer([response(transaction(1, rows=2, with_field=True)), HANG])
    _, _, err = await tail(server, config(progress=True, max_seconds=5))
    lines = [line for line in err.splitlines() if "events/s" in line]
    assert lines == [
        "vsmux tail: 3 events/s, 2 rows in 1 transactions, lag 10.0s, position commerce/-80@1-1",
        "vsmux tail: 0 events/s, 2 rows in 1 transactions, lag 10.0s, position commerce/-80@1-1",
    ]
    _, _, quiet = await tail(
        ScriptedServer([HANG]), config(progress=True, quiet=True, max_seconds=5)
    )
    assert quiet == ""


async def test_checkpoint_wins_over_from_and_must_match_keyspace(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.db")
    store.save("vsmux-tail", vgtid(("-80", "MySQL56/u:1-3")))
    server = LogServer(4)
    cfg = config(stream=StreamOptions(keyspace=KS, start="copy"), start_given=True)
    status, out, err = await tail(server, cfg, store=store)
    assert status == EXIT_OK and rows_of(out) == [400, 401]
    assert server.starts == [3]
    assert "resuming client id 'vsmux-tail' from its checkpoint" in err
    assert "(--from ignored)" in err

    status, out, err = await tail(
        LogServer(4), config(stream=StreamOptions(keyspace="other")), store
    )
    assert status == EXIT_USAGE and out == ""
    assert "is for keyspace(s) commerce, not other" in err


async def test_bad_options_fail_before_connecting() -> None:
    server = ScriptedServer([END])
    status, _, err = await tail(server, config(stream=StreamOptions(keyspace=KS, start="nope")))
    assert status == EXIT_USAGE and server.requests == []
    assert "--from must be" in err
    status, _, err = await tail(server, config(format="xml"))
    assert status == EXIT_USAGE and "unknown format 'xml'" in err


async def test_cancellation_closes_the_stream() -> None:
    server = ScriptedServer([HANG])
    with trio.move_on_after(0.01):
        await tail(server)
    assert len(server.requests) == 1 and server.open_calls == 0


class BrokenOut(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError


async def test_closed_stdout_is_a_quiet_end() -> None:
    server = ScriptedServer([response(transaction(1, with_field=True)), HANG])
    status, _, err = await tail(server, out=BrokenOut())
    assert status == EXIT_OK and "Error" not in err


# --- crash between write and checkpoint --------------------------------------

N = 6


async def crash_then_resume(
    tmp_path: Path, save_crash: int | None, write_crash: int | None
) -> tuple[list[int], list[int], int]:
    """Run until a simulated crash, then resume with the same checkpoint file.

    Returns the ids printed by each run and the transaction the second run
    started after.
    """
    path = tmp_path / "cp.db"
    store = CrashingStore(path, save_crash)
    out1 = CrashingOutput(write_crash)
    with pytest.raises(Crash):
        await tail(LogServer(N, rows=2), store=store, out=out1)
    store.close()
    server = LogServer(N, rows=2)
    with CheckpointStore(path) as again:
        status, out2, _ = await tail(server, store=again)
    assert status == EXIT_OK
    return rows_of(out1.getvalue()), rows_of(out2), server.starts[0]


@pytest.mark.parametrize("k", range(1, N + 1))
async def test_crash_after_write_before_checkpoint_replays_that_transaction(
    tmp_path: Path, k: int
) -> None:
    first, second, resumed_after = await crash_then_resume(tmp_path, save_crash=k, write_crash=None)
    # Transaction k was written but not checkpointed: it is the one replayed.
    assert resumed_after == k - 1
    assert first == [t * 100 + i for t in range(1, k + 1) for i in range(2)]
    assert second == [t * 100 + i for t in range(k, N + 1) for i in range(2)]


@pytest.mark.parametrize("k", range(1, N + 1))
async def test_crash_before_write_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, k: int
) -> None:
    first, second, resumed_after = await crash_then_resume(tmp_path, save_crash=None, write_crash=k)
    assert resumed_after == k - 1
    assert first + second == [t * 100 + i for t in range(1, N + 1) for i in range(2)]
