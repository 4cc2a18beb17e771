from __future__ import annotations

import pytest

from tests.e2e.e2e_harness import MODES


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Tablets in-process, or each behind its own loopback gRPC server."""
    value: str = request.param
    return value
