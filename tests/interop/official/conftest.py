"""Fixtures of the official-proto client suite.

``official``: the classes generated from ``vitess_protos/`` once per test
session (into a temporary directory; nothing generated is committed).

The gateway under test comes from the end-to-end harness in ``tests/e2e``
(``open_stack("grpc")``: a real loopback gRPC port in front of simulated
tablets served over gRPC).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.official.official_codegen import generate


@pytest.fixture(scope="session")
def official(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The generated ``*_pb2`` modules and the ``Vitess`` stub (see official_codegen)."""
    return generate(tmp_path_factory.mktemp("vitess-official-protos"))
