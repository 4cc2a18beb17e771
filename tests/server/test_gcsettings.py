"""The gateway's garbage-collector settings (run in a fresh interpreter: they are global)."""

from __future__ import annotations

import subprocess
import sys

from vsmux.server.gcsettings import YOUNG_THRESHOLD


def test_settle_gc_freezes_start_up_objects_and_spaces_out_collections() -> None:
    code = (
        "import gc, vsmux.server.app\n"
        "from vsmux.server.gcsettings import settle_gc\n"
        "middle, old = gc.get_threshold()[1:]\n"
        "frozen = settle_gc()\n"
        "print(frozen, gc.get_freeze_count(), *gc.get_threshold(), middle, old)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    frozen, count, young, middle, old, was_middle, was_old = map(int, result.stdout.split())
    assert frozen == count > 10_000  # the imported libraries' objects
    assert young == YOUNG_THRESHOLD
    assert (middle, old) == (was_middle, was_old)
