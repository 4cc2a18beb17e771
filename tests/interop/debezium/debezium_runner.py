"""Run the real Debezium Vitess connector in a child JVM and read what it produced.

>>> connector = start_connector(
...     {"vitess.keyspace": "commerce", "database.port": "15991", "snapshot.mode": "never"},
...     workdir,
... )
>>> await connector.wait_records(lambda rs: len(rs) >= 10, timeout=30)  # or wait_records_sync
>>> await connector.stop()  # or stop_sync()
>>> connector.records()  # [ConnectorRecord(topic, key, value, partition, offset), ...]

:func:`start_connector` launches ``java`` on the installation from
:mod:`debezium_setup` (the embedded engine and ``java/DebeziumJsonLines.java``) with the
given connector properties on top of :data:`BASE_PROPERTIES`. The JVM writes one JSON line
per change record (key and value as Kafka Connect's JsonConverter renders them, schemas off
unless ``converter.schemas.enable=true``; the source partition and offset the engine stores)
and one per engine life-cycle event (``task_started``, ``task_stopped``, ``completed``,
``exit``) to ``run-N.records.jsonl`` in ``workdir``; its log goes to ``run-N.log``.

Offsets are kept in ``workdir/offsets.dat`` (Kafka's FileOffsetBackingStore, flushed after
every batch), so calling :func:`start_connector` again with the same ``workdir`` resumes
from the offsets the previous run stored; each run has its own ``run-N.*`` files.

Nothing here blocks for long without a bound: every wait has a timeout and raises
:class:`ConnectorError` (with the tail of the JVM's log) when it runs out or when the
connector fails first. Waits poll files every 50 ms; the ``async`` ones sleep with
``trio.sleep`` (cancellable), the ``*_sync`` ones with ``time.sleep``. A JVM that does not
stop within its timeout is killed. The JVM also stops itself after ``max_seconds``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from tests.interop.debezium.debezium_setup import Installation, ensure_installed

__all__ = [
    "BASE_PROPERTIES",
    "ConnectorError",
    "ConnectorRecord",
    "DebeziumConnector",
    "start_connector",
]

# Engine settings every run needs; connector properties given to start_connector win.
BASE_PROPERTIES: dict[str, str] = {
    "name": "vsmux-debezium-test",
    "connector.class": "io.debezium.connector.vitess.VitessConnector",
    "topic.prefix": "vsmux",
    "database.hostname": "127.0.0.1",
    "vitess.tablet.type": "MASTER",
    "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
    # 0: offsets are committed after every batch the engine hands over, so a restart
    # resumes right after the last record that was written out.
    "offset.flush.interval.ms": "0",
    # Debezium retries a failed stream with a back-off of up to 10 s by default; tests
    # with injected faults should not wait that long.
    "errors.retry.delay.initial.ms": "100",
    "errors.retry.delay.max.ms": "1000",
}

_POLL = 0.05  # seconds between looks at the output file
_LOG_TAIL = 6000  # characters of the JVM log quoted in errors


class ConnectorError(AssertionError):
    """The connector failed, exited, or a wait on it timed out (the message has its log)."""


@dataclass(frozen=True)
class ConnectorRecord:
    """One change record as the connector emitted it."""

    topic: str
    key: Any  # the JSON key (a dict of primary-key columns), or None
    value: Any  # the JSON value (before/after/source/op/...), None for a tombstone
    partition: dict[str, Any]  # the source partition
    offset: dict[str, Any]  # the source offset the engine stores for this record


class DebeziumConnector:
    """A running (or finished) connector JVM; see the module docstring."""

    def __init__(self, process: subprocess.Popen[bytes], paths: dict[str, Path]) -> None:
        self.process = process
        self.records_path = paths["records"]
        self.log_path = paths["log"]
        self.stop_path = paths["stop"]
        self.properties_path = paths["properties"]
        self._records: list[ConnectorRecord] = []
        self._statuses: list[dict[str, Any]] = []
        self._buffer = b""
        self._read_at = 0

    # -- reading --------------------------------------------------------------

    def poll(self) -> None:
        """Read whatever the JVM wrote since the last call (never blocks)."""
        try:
            with self.records_path.open("rb") as handle:
                handle.seek(self._read_at)
                chunk = handle.read()
        except FileNotFoundError:
            return
        self._read_at += len(chunk)
        data = self._buffer + chunk
        *lines, self._buffer = data.split(b"\n")  # the last piece may be a partial line
        for line in lines:
            if not line.strip():
                continue
            item = json.loads(line)
            if item.get("type") == "record":
                self._records.append(
                    ConnectorRecord(
                        item["topic"], item["key"], item["value"], item["partition"], item["offset"]
                    )
                )
            else:
                self._statuses.append(item)

    def records(self) -> list[ConnectorRecord]:
        """Every change record so far, in the order the connector emitted them."""
        self.poll()
        return list(self._records)

    def statuses(self) -> list[dict[str, Any]]:
        """Engine life-cycle lines so far (``{"type": "task_started"}``, ...)."""
        self.poll()
        return list(self._statuses)

    def completion(self) -> dict[str, Any] | None:
        """The engine's ``completed`` line (``success``, ``message``, ``error``), if any."""
        return next((s for s in self.statuses() if s["type"] == "completed"), None)

    def failure(self) -> str | None:
        """Why the connector is known to have failed, else None."""
        done = self.completion()
        if done is not None and not done["success"]:
            return f"engine failed: {done['message']}\n{done.get('error', '')}"
        code = self.process.poll()
        if code is not None and code != 0:
            return f"the JVM exited with status {code}"
        return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, *levels: str) -> list[str]:
        """Log lines at the given levels (default ERROR), without stack frames."""
        wanted = levels or ("ERROR",)
        return [
            line for line in self.log_text().splitlines() if any(f" {w} " in line for w in wanted)
        ]

    def describe(self) -> str:
        """A summary for failure messages: exit state, counts and the log's tail."""
        self.poll()
        return (
            f"exit status {self.process.poll()}, {len(self._records)} records, "
            f"statuses {[s['type'] for s in self._statuses]}; log {self.log_path}:\n"
            f"{self.log_text()[-_LOG_TAIL:]}"
        )

    # -- waiting --------------------------------------------------------------

    def _check(self, predicate: Callable[[list[ConnectorRecord]], bool], fail: bool) -> bool:
        if predicate(self.records()):
            return True
        problem = self.failure() if fail else None
        if problem is None and self.process.poll() is not None:
            problem = "the JVM exited"
        if problem is not None:
            raise ConnectorError(f"{problem} before the awaited records\n{self.describe()}")
        return False

    async def wait_records(
        self,
        predicate: Callable[[list[ConnectorRecord]], bool],
        timeout: float,
        *,
        fail_on_error: bool = True,
    ) -> list[ConnectorRecord]:
        """Wait until ``predicate(records)`` holds; cancellable.

        Raises :class:`ConnectorError` after ``timeout`` seconds, or at once when the JVM
        exits or (``fail_on_error``) the engine reports a failure first.
        """
        deadline = trio.current_time() + timeout
        while not self._check(predicate, fail_on_error):
            if trio.current_time() > deadline:
                raise ConnectorError(f"timed out after {timeout} s\n{self.describe()}")
            await trio.sleep(_POLL)
        return self.records()

    def wait_records_sync(
        self,
        predicate: Callable[[list[ConnectorRecord]], bool],
        timeout: float,
        *,
        fail_on_error: bool = True,
    ) -> list[ConnectorRecord]:
        """:meth:`wait_records` for code outside Trio (blocks the calling thread)."""
        deadline = time.monotonic() + timeout
        while not self._check(predicate, fail_on_error):
            if time.monotonic() > deadline:
                raise ConnectorError(f"timed out after {timeout} s\n{self.describe()}")
            time.sleep(_POLL)
        return self.records()

    # -- stopping -------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the JVM to close the engine (commits offsets) and exit; returns at once."""
        self.stop_path.touch()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop cleanly and wait for the exit; kill the JVM if it takes over ``timeout``.

        Raises :class:`ConnectorError` if it had to be killed. On cancellation the JVM is
        killed before the cancellation propagates.
        """
        self.request_stop()
        deadline = trio.current_time() + timeout
        try:
            while trio.current_time() < deadline:
                if self.process.poll() is not None:
                    break
                await trio.sleep(_POLL)
        finally:
            killed = self._reap()
        if killed:
            raise ConnectorError(f"did not stop within {timeout} s; killed\n{self.describe()}")

    def stop_sync(self, timeout: float = 30.0) -> None:
        """:meth:`stop` for code outside Trio."""
        self.request_stop()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                time.sleep(_POLL)
        finally:
            killed = self._reap()
        if killed:
            raise ConnectorError(f"did not stop within {timeout} s; killed\n{self.describe()}")

    def kill(self) -> None:
        """SIGKILL the JVM at once (a crash: offsets not yet flushed are lost)."""
        self._reap()

    def _reap(self) -> bool:
        """Kill the JVM if it still runs and wait for it; whether it had to be killed."""
        if self.process.poll() is not None:
            return False
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        return True


def _next_run(workdir: Path) -> int:
    taken = [int(p.name.split(".")[0][4:]) for p in workdir.glob("run-*.properties")]
    return max(taken, default=0) + 1


def _properties_text(properties: Mapping[str, str]) -> str:
    def escape(text: str) -> str:
        out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=")
        return out.replace(":", "\\:")

    return "".join(f"{escape(k)}={escape(v)}\n" for k, v in sorted(properties.items()))


def start_connector(
    properties: Mapping[str, str],
    workdir: Path,
    *,
    max_seconds: int = 300,
    installation: Installation | None = None,
    java_options: Sequence[str] = (),
) -> DebeziumConnector:
    """Launch the connector with ``BASE_PROPERTIES`` updated by ``properties``.

    ``properties`` must name at least ``vitess.keyspace`` and ``database.port`` (the
    gateway); ``offset.storage.file.filename`` defaults to ``workdir/offsets.dat``.
    Returns at once; the JVM needs a few seconds before it connects. It exits by itself
    after ``max_seconds``. Raises :class:`debezium_setup.SetupError` (or ``JavaMissing``)
    when the connector cannot be installed.
    """
    installation = installation or ensure_installed()
    workdir.mkdir(parents=True, exist_ok=True)
    run = _next_run(workdir)
    paths = {
        kind: workdir / f"run-{run}.{suffix}"
        for kind, suffix in (
            ("properties", "properties"),
            ("records", "records.jsonl"),
            ("log", "log"),
            ("stop", "stop"),
        )
    }
    merged = dict(BASE_PROPERTIES)
    merged["offset.storage.file.filename"] = str(workdir / "offsets.dat")
    merged.update(properties)
    paths["properties"].write_text(_properties_text(merged))
    command = installation.command(
        str(paths["properties"]), str(paths["records"]), str(paths["stop"]), str(max_seconds)
    )
    if java_options:
        command[1:1] = list(java_options)
    with paths["log"].open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            # Its own process group: a Ctrl-C in the terminal reaches pytest only, which
            # then stops the JVM through the stop file or kills it.
            start_new_session=True,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
    return DebeziumConnector(process, paths)
