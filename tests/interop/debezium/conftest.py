"""Fixtures of the Debezium suite.

``debezium``: the connector installation (see ``debezium_setup``), built once per test
session. Without ``java`` on the PATH every Debezium test is skipped with the reason;
any other setup failure fails them, since a machine with Java must run them.

The gateway under test comes from the end-to-end harness in ``tests/e2e``.
"""

from __future__ import annotations

import pytest

from tests.interop.debezium.debezium_setup import (
    Installation,
    JavaMissing,
    SetupError,
    ensure_installed,
)


@pytest.fixture(scope="session")
def debezium() -> Installation:
    """The installed connector and Java runner; skips without java, fails on other errors."""
    try:
        return ensure_installed()
    except JavaMissing as exc:
        pytest.skip(f"java not found: {exc}")
    except SetupError as exc:
        pytest.fail(f"Debezium connector setup failed: {exc}", pytrace=False)
