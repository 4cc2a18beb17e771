"""The import graph of ``src/vsmux`` follows the documented layers.

``docs/architecture.md`` draws the packages as a stack; a module may import
its own package and the packages below it, never one above it or beside it.
The order is written here once, and the test walks every import statement
(top-level and inside functions) of every module, so a new upward or sideways
arrow fails with the line that made it.

Only ``vsmux.transport`` may import grpclib, h2, hyperframe, asyncio or
trio_asyncio: everything above it speaks Trio and ``VStreamError``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vsmux

SRC = Path(vsmux.__file__).resolve().parent

#: Lowest first. A package may import itself and anything earlier in the list.
#: ``proto`` (generated messages) and ``errors`` are the foundation every
#: layer stands on; ``tools`` (the code generator) stands alone.
LAYERS: list[str] = [
    "proto",
    "errors",
    "wire",
    "topology",
    "core",
    "mux",
    "sources",
    "transport",
    "server",
    "client",
    "demo",
    "cli",
]
STANDALONE = {"tools", "__init__", "__main__"}

#: Third-party modules that only the transport package may import.
TRANSPORT_ONLY = {"grpclib", "h2", "hyperframe", "asyncio", "trio_asyncio"}


def _package_of(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return parts[0]


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ["vsmux", *parts]


def _imports(path: Path, here: list[str] | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file.

    ``here`` is the module's dotted name as parts (from its place in ``SRC``
    unless given); relative imports are resolved against it.
    """
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path) if here is None else here
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from vsmux import wire`` names the package in the alias
            # (``from vsmux import __version__`` names no package).
            if name == "vsmux":
                found += [
                    (node.lineno, f"vsmux.{alias.name}")
                    for alias in node.names
                    if not alias.name.startswith("__")
                ]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "proto" not in p.relative_to(SRC).parts[:1])


def test_every_package_is_placed() -> None:
    packages = {_package_of(p) for p in SRC.rglob("*.py")}
    assert packages <= set(LAYERS) | STANDALONE, packages - set(LAYERS) - STANDALONE


def test_imports_go_down_the_layers_only() -> None:
    wrong: list[str] = []
    for path in _modules():
        package = _package_of(path)
        if package in STANDALONE:
            continue
        allowed = set(LAYERS[: LAYERS.index(package) + 1])
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] != "vsmux" or len(parts) < 2:
                continue
            target = parts[1]
            if target not in allowed:
                wrong.append(
                    f"{path.relative_to(SRC)}:{line} imports {name} ({package} -> {target})"
                )
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_only_the_transport_imports_grpclib_and_asyncio() -> None:
    wrong: list[str] = []
    for path in _modules():
        if _package_of(path) == "transport":
            continue
        for line, name in _imports(path):
            if name.split(".")[0] in TRANSPORT_ONLY:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert not wrong, "only vsmux.transport may import these:\n" + "\n".join(wrong)


def test_the_walk_sees_relative_and_function_level_imports(tmp_path: Path) -> None:
    # The checker itself: an import inside a function and a relative import count.
    sample = tmp_path / "probe.py"
    sample.write_text(
        "def f():\n    import asyncio\n\nfrom ..mux import api\nfrom vsmux import wire\n"
    )
    names = sorted(name for _line, name in _imports(sample, ["vsmux", "core", "probe"]))
    assert names == ["asyncio", "vsmux", "vsmux.mux", "vsmux.wire"]


#: Packages used only through their ``__init__``; their modules are private.
FRONTED = {"topology", "sources", "transport"}


def test_fronted_packages_are_used_through_their_front() -> None:
    wrong: list[str] = []
    for path in _modules():
        package = _package_of(path)
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] != "vsmux" or len(parts) < 3 or parts[1] == package:
                continue
            if parts[1] in FRONTED:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert not wrong, "import these from the package itself:\n" + "\n".join(wrong)
