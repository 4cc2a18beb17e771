"""Optional py-spy sampling of a benchmark process (a dev-only tool, never required).

``profile_window(pid, seconds, out)`` starts ``py-spy record`` on ``pid`` in
the background; ``.finish()`` waits for it and writes ``out`` with the top
functions by own time and by inclusive time (from py-spy's collapsed stacks,
kept in the temp directory). If py-spy is missing or may not attach, a note
is written instead and the benchmark carries on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

__all__ = ["profile_window", "summarize"]

_LINE = re.compile(r"^(?P<stacks>.*) (?P<count>\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class _Window:
    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        # Collapsed stacks are bulky: keep them out of the results directory.
        self.raw = Path(tempfile.gettempdir()) / f"{out.stem}.{pid}.raw"
        self.proc: subprocess.Popen[bytes] | None = None
        exe = _py_spy()
        if exe is None:
            out.write_text("py-spy not installed (pip install py-spy into .venv to profile)\n")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "250",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self.raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def finish(self) -> None:
        if self.proc is None:
            return
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.raw.exists():
            self.out.write_text("py-spy produced no profile:\n" + err.decode(errors="replace"))
            return
        self.out.write_text(summarize(self.raw.read_text()))


def profile_window(pid: int, seconds: float, out: Path) -> _Window:
    return _Window(pid, seconds, out)


def _func(frame: str) -> str:
    # "name (path/to/file.py:123)" -> "name (file.py)": aggregate over lines.
    frame = _FRAME_LINE.sub(")", frame)
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')')).name})" if where else name


# Layers of the gateway, by the file of a sample's innermost Python frame
# (first match wins; C code counts towards the Python function that called it).
_LAYERS = (
    ("vsmux wire (split, pack; C inside)", ("vsmux/wire/",)),
    ("vsmux positions (GTID -> VGTID)", ("vsmux/core/positions",)),
    ("vsmux other (grouping, streamers, sender, hand-offs)", ("vsmux/",)),
    (
        "grpclib + h2/hyperframe/hpack (HTTP/2, gRPC framing)",
        ("grpclib/", "h2/", "hyperframe/", "hpack/"),
    ),
    ("asyncio transports (socket reads and writes)", ("asyncio/",)),
    ("trio-asyncio loop driver", ("trio_asyncio/",)),
    ("trio scheduler", ("trio/",)),
)


def _layer(frame: str) -> str:
    where = frame.partition(" (")[2]
    for name, prefixes in _LAYERS:
        if where.startswith(prefixes):
            return name
    return "other"


def summarize(raw: str, top: int = 25) -> str:
    """Top functions by own and by inclusive samples, and own time per layer."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        count = int(m["count"])
        raw_frames = [f for f in m["stacks"].split(";") if "(" in f]
        if raw_frames:
            layers[_layer(raw_frames[-1])] += count
        frames = [_func(f) for f in m["stacks"].split(";") if f]
        # py-spy puts the thread name first; skip frames that are not functions.
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top)]
    lines += ["", "own time by layer:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in layers.most_common()]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top)]
    return "\n".join(lines) + "\n"
