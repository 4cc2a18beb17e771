"""Message and stub classes generated at test time from Vitess's own .proto files.

``generate(out_dir)`` runs grpcio-tools' protoc over ``vitess_protos/`` and
imports the result as the package :data:`PACKAGE`, so the checks in this
directory decode the gateway's bytes with classes nobody in this project
wrote (the project's own ``protos/`` and ``vsmux.proto`` are never involved).

Isolation from the project's classes:

- protoc writes ``import query_pb2 as query__pb2``; those imports are turned
  into package-relative ones, so every generated module lives under
  :data:`PACKAGE` and no top-level ``query_pb2``/``vtgate_pb2`` is created;
- the package is loaded from its directory by file location, without
  touching ``sys.path``;
- the generated modules register their files in protobuf's default
  descriptor pool, while ``vsmux.proto`` (betterproto2) and the upb classes
  of ``vsmux.wire`` use a private pool, so the two sets never meet.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["PACKAGE", "PROTO_DIR", "Official", "generate"]

PROTO_DIR = Path(__file__).with_name("vitess_protos")
# Unique on purpose: nothing else in the process may own this module name.
PACKAGE = "vitess_official_pb"
MODULES = ("vttime", "vtrpc", "topodata", "query", "binlogdata", "vtgate", "vtgateservice")

# protoc's Python output imports its sibling files as top-level modules.
_SIBLING_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


@dataclass(frozen=True)
class Official:
    """The generated modules: ``*_pb2`` message classes and the ``Vitess`` stub."""

    binlogdata: ModuleType
    query: ModuleType
    topodata: ModuleType
    vtgate: ModuleType
    vtrpc: ModuleType
    vtgateservice_grpc: ModuleType


def generate(out_dir: Path) -> Official:
    """Run protoc into ``out_dir/<PACKAGE>`` and import the generated package."""
    if PACKAGE in sys.modules:
        raise RuntimeError(f"{PACKAGE} is already imported; generate() runs once per process")
    package_dir = out_dir / PACKAGE
    package_dir.mkdir(parents=True)
    protos = sorted(str(p) for p in PROTO_DIR.glob("*.proto"))
    # A subprocess, like a developer running protoc by hand; its errors are kept.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--python_out={package_dir}",
            f"--grpc_python_out={package_dir}",
            *protos,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed ({result.returncode}):\n{result.stderr}")
    for path in package_dir.glob("*_pb2*.py"):
        text = path.read_text()
        path.write_text(_SIBLING_IMPORT.sub(r"from . import \1 as \2", text))
    init = package_dir / "__init__.py"
    init.write_text('"""Generated from the vendored Vitess protos at test time."""\n')
    spec = importlib.util.spec_from_file_location(
        PACKAGE, init, submodule_search_locations=[str(package_dir)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)

    def load(name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{name}")

    for name in MODULES:
        load(f"{name}_pb2")
    return Official(
        binlogdata=load("binlogdata_pb2"),
        query=load("query_pb2"),
        topodata=load("topodata_pb2"),
        vtgate=load("vtgate_pb2"),
        vtrpc=load("vtrpc_pb2"),
        vtgateservice_grpc=load("vtgateservice_pb2_grpc"),
    )
