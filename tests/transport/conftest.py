"""The transport tests use the server tests' gRPC client helpers (``gw_helpers``).

``tests/server`` is made importable from here, as ``tests/interop`` does with
``tests/e2e``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SERVER = str(Path(__file__).resolve().parents[1] / "server")
if _SERVER not in sys.path:
    sys.path.append(_SERVER)
