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

import importlib
import os
from types import ModuleType

__all__ = ["ACCELERATED", "DISABLE_ENV", "native", "optional_extension"]

#: Environment variable that, set to anything but "" or "0", keeps the C loops off.
DISABLE_ENV = "VSMUX_PURE_PYTHON"


def optional_extension(name: str, disable_env: str) -> ModuleType | None:
    """The optional C extension ``name``, or None when it is not built or is switched off.

    ``disable_env`` set to anything but "" or "0" switches it off.
    """
    if os.environ.get(disable_env, "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:  # not built: no compiler when vsmux was installed
        return None


#: The extension module, or None when the pure-Python loops run.
native: ModuleType | None = optional_extension("vsmux.wire._accel", DISABLE_ENV)
#: True when the C loops are in use.
ACCELERATED = native is not None
