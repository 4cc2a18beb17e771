"""Shared plumbing for the end-to-end benchmarks.

Process orchestration (each benchmark role runs in its own process group and
is always killed on the way out), /proc sampling of CPU time and memory,
medians, machine facts, tables and JSON results under ``benchmarks/results/``.

Linux only: CPU and memory come from ``/proc/<pid>/stat`` and ``/proc/<pid>/status``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsmux.wire.accel import ACCELERATED

__all__ = [
    "BENCH_DIR",
    "GATEWAY_KINDS",
    "REPO_ROOT",
    "RESULTS_DIR",
    "Child",
    "ProcSample",
    "RssSampler",
    "free_port",
    "gateway_cmd",
    "machine_busy_seconds",
    "machine_info",
    "median_of",
    "print_table",
    "proc_sample",
    "python_cmd",
    "run_client",
    "spawn",
    "vsmux_serve_cmd",
    "wait_for_port",
    "write_results",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- processes


def python_cmd(script: str, *args: str) -> list[str]:
    """Run a script from ``benchmarks/`` with this interpreter."""
    return [sys.executable, str(BENCH_DIR / script), *args]


def vsmux_serve_cmd(topology: Path, port: int, *extra: str) -> list[str]:
    """The gateway as a user runs it: ``python -m vsmux serve``."""
    return [
        sys.executable,
        "-m",
        "vsmux",
        "serve",
        "--topology",
        str(topology),
        "--listen",
        f"127.0.0.1:{port}",
        *extra,
    ]


#: ``--gateway`` choices of the end-to-end benchmarks (see :func:`gateway_cmd`).
GATEWAY_KINDS = (
    "serve",
    "shim",
    "serve-coalesced",
    "serve-messages",
    "serve-coalesced-messages",
)


def gateway_cmd(kind: str, topology: Path, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The gateway process for ``kind`` (one of :data:`GATEWAY_KINDS`).

    ``serve``: the real CLI; ``shim``: ``_gateway_shim.py`` (same library
    objects); ``serve-<framing>``: the real CLI with the client responses
    framed or written another way (``_serve_variant.py``).
    """
    if kind == "shim":
        return python_cmd(
            "_gateway_shim.py", "--topology", str(topology), "--listen", f"127.0.0.1:{port}", *extra
        )
    if kind.startswith("serve-"):
        serve = vsmux_serve_cmd(topology, port, *extra)
        framing = kind.removeprefix("serve-")
        return python_cmd("_serve_variant.py", "--framing", framing, "--", *serve[4:])
    return vsmux_serve_cmd(topology, port, *extra)


@dataclass
class Child:
    """A child process in its own process group, with its stdout lines queued."""

    name: str
    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    stderr_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_json_line(self, timeout: float, prefix: str = "{") -> dict[str, Any]:
        """The next stdout line starting with ``prefix``, parsed as JSON."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no JSON line within {timeout:.0f}s{self._tail()}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}{self._tail()}"
                    ) from None
                continue
            if line.startswith(prefix):
                result: dict[str, Any] = json.loads(line)
                return result

    def _tail(self) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        text = self.stderr_path.read_text(errors="replace")[-2000:]
        return f"\n--- {self.name} stderr (tail) ---\n{text}"

    def stop(self, grace: float = 3.0) -> None:
        """SIGINT the group, then SIGKILL it if it has not exited within ``grace``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Kill the group even if the leader exited: it may have left children.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)


def run_client(
    cmd: Sequence[str],
    on_event: Callable[[str], None] | None = None,
    timeout: float = 120.0,
    log_dir: Path | None = None,
    name: str = "client",
) -> dict[str, Any]:
    """Run a client to completion; ``{"event": X}`` lines call ``on_event(X)``.

    Returns the client's final JSON line (its results).
    """
    with spawn(name, cmd, log_dir) as child:
        deadline = time.monotonic() + timeout
        while True:
            msg = child.read_json_line(max(0.1, deadline - time.monotonic()))
            if "event" in msg:
                if on_event is not None:
                    on_event(str(msg["event"]))
                continue
            return msg


def _pump(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


@contextlib.contextmanager
def spawn(name: str, cmd: Sequence[str], log_dir: Path | None = None) -> Iterator[Child]:
    """Start ``cmd`` in a new session; it is stopped (group-killed) when the block exits."""
    stderr: Any = subprocess.DEVNULL
    stderr_path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        stderr_path = log_dir / f"{name}.stderr"
        stderr = stderr_path.open("w")
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        cwd=str(REPO_ROOT),
        env=env,
    )
    child = Child(name, proc, stderr_path=stderr_path)
    pump = threading.Thread(target=_pump, args=(proc.stdout, child.lines), daemon=True)
    pump.start()
    try:
        yield child
    finally:
        child.stop()
        if stderr_path is not None:
            stderr.close()


@dataclass(frozen=True)
class ClientBurst:
    """When a burst of client processes starts and is measured (epoch seconds).

    ``sizes`` holds the clients each process runs (at most ``per_process``).
    """

    sizes: list[int]
    start_at: float
    measure_from: float
    end_at: float


def client_burst(
    n: int, per_process: int, *, lead: float, warmup: float, seconds: float
) -> ClientBurst:
    """``n`` clients over processes, starting ``lead`` s from now (later with more processes)."""
    procs = max(1, -(-n // per_process))
    sizes = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    start_at = time.time() + lead + 0.2 * procs
    measure_from = start_at + warmup
    return ClientBurst(sizes, start_at, measure_from, measure_from + seconds)


def start_clients(
    stack: contextlib.ExitStack,
    script: str,
    burst: ClientBurst,
    port: int,
    *,
    heartbeat_interval: float,
    keyspace: str,
    name: str,
    log_dir: Path | None = None,
) -> list[Child]:
    """Start the burst's client processes (``load_client.py``'s options); wait until each is ready.

    They stop when ``stack`` closes.
    """
    clients = []
    for i, size in enumerate(burst.sizes):
        cmd = python_cmd(
            script,
            "--port",
            str(port),
            "--clients",
            str(size),
            "--start-at",
            repr(burst.start_at),
            "--measure-from",
            repr(burst.measure_from),
            "--end-at",
            repr(burst.end_at),
            "--gap-threshold",
            str(2.0 * heartbeat_interval),
            "--heartbeat-interval",
            str(heartbeat_interval),
            "--keyspace",
            keyspace,
        )
        clients.append(stack.enter_context(spawn(f"{name}-{i}", cmd, log_dir)))
    for client in clients:
        client.read_json_line(60)  # ready
    return clients


def free_port() -> int:
    """A loopback port the OS considers free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, child: Child, timeout: float = 30.0) -> None:
    """Poll until something accepts on ``127.0.0.1:port``; fail if ``child`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}{child._tail()}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{child.name} did not listen on port {port} within {timeout:.0f}s")


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user+system) and memory of one process at one instant."""

    cpu_seconds: float
    rss_bytes: int
    hwm_bytes: int  # VmHWM: peak resident set size so far


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (``/proc/stat``; not idle, not iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _CLK_TCK


def proc_sample(pid: int) -> ProcSample:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name may contain spaces; fields resume after the last ')'.
    rest = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(rest[11]), int(rest[12])
    rss = int(rest[21]) * _PAGE
    hwm = rss
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
                break
    return ProcSample((utime + stime) / _CLK_TCK, rss, hwm)


class RssSampler:
    """Samples a process's RSS on a thread every ``interval`` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                s = proc_sample(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            self.peak_rss = max(self.peak_rss, s.rss_bytes)
            self.samples.append((time.monotonic() - t0, s.rss_bytes))


# --------------------------------------------------------------------------- results


def median_of(runs: Sequence[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        # The gateway and tablets inherit this process's environment and install.
        "c_extension": ACCELERATED,
        "loadavg_at_start": [round(x, 2) for x in load],
        "date_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (the latest run) and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table (also valid Markdown)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
