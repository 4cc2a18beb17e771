"""Fixtures of the official-proto client suite.

``official``: the classes generated from ``vitess_protos/`` once per test
session (into a temporary directory; nothing generated is committed).

The gateway under test comes from the end-to-end harness in ``tests/e2e``
(``open_stack("grpc")``: a real loopback gRPC port in front of simulated
tablets served over gRPC), so that directory is importable from here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from official_codegen import generate

_E2E = str(Path(__file__).resolve().parents[2] / "e2e")
if _E2E not in sys.path:
    sys.path.append(_E2E)


@pytest.fixture(scope="session")
def official(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The generated ``*_pb2`` modules and the ``Vitess`` stub (see official_codegen)."""
    return generate(tmp_path_factory.mktemp("vitess-official-protos"))
