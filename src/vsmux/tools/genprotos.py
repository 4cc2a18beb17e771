"""Regenerate ``vsmux.proto`` from ``protos/*.proto`` with betterproto2.

``python -m vsmux.tools.genprotos`` rewrites the committed package in place;
``python -m vsmux.tools.genprotos --check`` generates into a temporary folder
and exits 1 if the committed code differs (the test suite runs the check).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROTOS = ROOT / "protos"
TARGET = ROOT / "src" / "vsmux" / "proto"
OPTIONS = "client_generation=async,server_generation=async,google_protobuf_descriptors"


def generate(out_dir: Path) -> None:
    """Run protoc with the betterproto2 plugin over every proto into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.glob("*.proto"))
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"--python_betterproto2_out={out_dir}",
        f"--python_betterproto2_opt={OPTIONS}",
        *sources,
    ]
    subprocess.run(cmd, check=True, cwd=PROTOS, env=env, stdout=subprocess.DEVNULL)


def differences(generated: Path, committed: Path) -> list[str]:
    """Relative paths of files that differ, or exist on only one side."""
    names = {p.relative_to(generated) for p in generated.rglob("*") if p.is_file()}
    names |= {
        p.relative_to(committed)
        for p in committed.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    return sorted(
        str(name)
        for name in names
        if not (generated / name).is_file()
        or not (committed / name).is_file()
        or not filecmp.cmp(generated / name, committed / name, shallow=False)
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "proto"
        generate(out)
        if "--check" in args:
            stale = differences(out, TARGET)
            if stale:
                print("src/vsmux/proto is stale; run 'make protos'. Differs:", *stale, sep="\n  ")
                return 1
            return 0
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(out, TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
