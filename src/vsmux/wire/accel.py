"""The optional C loops of the wire layer, and the switch that turns them off.

:mod:`vsmux.wire._accel` is a small C extension built at install time when a
compiler is there. It runs the two per-event loops of the hot path (splitting
a tablet response into frames, and writing frames into client responses with
their ``keyspace.table`` names) and hands anything unusual back to the Python
code, which stays the reference (see the extension's header comment).

Set ``VSMUX_PURE_PYTHON=1`` to run without it (tests do, to check the
fallback); ``ACCELERATED`` says which is in use.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["ACCELERATED", "DISABLE_ENV", "native"]

#: Environment variable that, set to anything but "" or "0", keeps the C loops off.
DISABLE_ENV = "VSMUX_PURE_PYTHON"


def _load() -> ModuleType | None:
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None
    try:
        from vsmux.wire import _accel
    except ImportError:  # not built: no compiler when vsmux was installed
        return None
    return _accel


#: The extension module, or None when the pure-Python loops run.
native: ModuleType | None = _load()
#: True when the C loops are in use.
ACCELERATED = native is not None
