"""Fixtures of the Debezium suite.

``debezium``: the connector installation (see ``debezium_setup``), built once per test
session. Without ``java`` on the PATH every Debezium test is skipped with the reason;
any other setup failure fails them, since a machine with Java must run them.

The gateway under test comes from the end-to-end harness in ``tests/e2e``, so that
directory is importable from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from debezium_setup import Installation, JavaMissing, SetupError, ensure_installed

_E2E = str(Path(__file__).resolve().parents[2] / "e2e")
if _E2E not in sys.path:
    sys.path.append(_E2E)


@pytest.fixture(scope="session")
def debezium() -> Installation:
    """The installed connector and Java runner; skips without java, fails on other errors."""
    try:
        return ensure_installed()
    except JavaMissing as exc:
        pytest.skip(f"java not found: {exc}")
    except SetupError as exc:
        pytest.fail(f"Debezium connector setup failed: {exc}", pytrace=False)
