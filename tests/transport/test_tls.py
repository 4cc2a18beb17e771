"""TLS and mutual TLS on a real loopback port, with certificates made for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.transport.certs import CertAuthority, CertFiles
from vsmux.errors import Code, VStreamError
from vsmux.mux.api import SendResponses
from vsmux.proto import binlogdata, vtgate
from vsmux.sources import SimulatedCluster
from vsmux.topology import TabletInfo
from vsmux.transport import (
    Call,
    ClientTls,
    Method,
    ServerTls,
    TlsFileError,
    TlsFiles,
    TrioService,
    open_grpc_endpoint,
    open_tablet_channels,
    open_vstream,
    serve_cluster_tablets,
)
from vsmux.transport._tls import peer_identity


def body(*types: int) -> bytes:
    return bytes(vtgate.VStreamResponse(events=[binlogdata.VEvent(type=t) for t in types]))


class Recorder:
    """A VStream method that records each call's identity and sends what it is told."""

    def __init__(self) -> None:
        self.identities: list[tuple[str | None, str | None]] = []
        self.release = trio.Event()
        self.hold = False

    async def vstream(self, call: Call) -> None:
        call.request()
        self.identities.append((call.peer_subject, call.peer_common_name))

        async def run(send: SendResponses) -> None:
            await send([body(1)])
            if self.hold:
                await self.release.wait()
                await send([body(2)])

        await call.stream_responses(run)


def serving(recorder: Recorder, tls: ServerTls | None) -> AbstractAsyncContextManager[Any]:
    service = TrioService(
        "vtgateservice.Vitess",
        [Method("VStream", recorder.vstream)],
        max_request_bytes=1 << 20,
        read_timeout=10,
    )
    return open_grpc_endpoint(service, max_request_bytes=1 << 20, tls=tls)


async def stream_all(port: int, tls: ClientTls | None) -> list[list[int]]:
    got: list[list[int]] = []
    with trio.fail_after(10):
        async with open_vstream(f"127.0.0.1:{port}", vtgate.VStreamRequest(), tls=tls) as stream:
            while (response := await stream.receive()) is not None:
                got.append([e.type for e in response.events])
    return got


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    return CertAuthority(tmp_path / "ca")


@pytest.fixture
def server_cert(ca: CertAuthority) -> CertFiles:
    return ca.issue("gateway")


def client(ca_file: Path, cert: CertFiles | None = None, name: str | None = None) -> ClientTls:
    return ClientTls.load(
        TlsFiles(cert.cert if cert else None, cert.key if cert else None, ca_file, name)
    )


async def test_a_tls_port_streams_to_a_tls_client(
    aio_loop: None, ca: CertAuthority, server_cert: CertFiles
) -> None:
    recorder = Recorder()
    tls = ServerTls(TlsFiles(server_cert.cert, server_cert.key))
    assert not tls.mutual
    async with serving(recorder, tls) as endpoint:
        assert await stream_all(endpoint.port, client(ca.cert_path)) == [[1]]
    # TLS without client certificates: nobody is identified.
    assert recorder.identities == [(None, None)]


async def test_a_plaintext_client_is_refused_by_a_tls_port(
    aio_loop: None, server_cert: CertFiles
) -> None:
    recorder = Recorder()
    async with serving(recorder, ServerTls(TlsFiles(server_cert.cert, server_cert.key))) as ep:
        with pytest.raises(VStreamError) as info:
            await stream_all(ep.port, None)
    assert info.value.code == Code.UNAVAILABLE
    assert recorder.identities == []


async def test_a_server_certificate_from_another_ca_is_refused(
    aio_loop: None, tmp_path: Path, server_cert: CertFiles
) -> None:
    other = CertAuthority(tmp_path / "other", "other CA")
    recorder = Recorder()
    async with serving(recorder, ServerTls(TlsFiles(server_cert.cert, server_cert.key))) as ep:
        with pytest.raises(VStreamError) as info:
            await stream_all(ep.port, client(other.cert_path))
    # A setting to fix, not a failure to retry.
    assert info.value.code == Code.UNAUTHENTICATED
    assert info.value.message == (
        f"TLS with 127.0.0.1:{ep.port} failed: the server's certificate is not trusted: "
        "unable to get local issuer certificate"
    )
    assert recorder.identities == []


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    aio_loop: None, ca: CertAuthority, server_cert: CertFiles
) -> None:
    recorder = Recorder()
    tls = ServerTls(TlsFiles(server_cert.cert, server_cert.key, ca.cert_path))
    assert tls.mutual
    async with serving(recorder, tls) as endpoint:
        with pytest.raises(VStreamError) as info:
            await stream_all(endpoint.port, client(ca.cert_path))
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.message.endswith(
        "; a gateway that requires client certificates (mutual TLS) closes connections "
        "that bring none"
    )
    assert recorder.identities == []


async def test_a_tls_client_is_told_a_plaintext_port_does_not_speak_tls(
    aio_loop: None, ca: CertAuthority
) -> None:
    async with serving(Recorder(), None) as endpoint:
        with pytest.raises(VStreamError) as info:
            await stream_all(endpoint.port, client(ca.cert_path))
    assert info.value.code == Code.UNAUTHENTICATED
    assert info.value.message == (
        f"TLS with 127.0.0.1:{endpoint.port} failed: the server does not speak TLS on this port"
    )


async def test_mutual_tls_refuses_a_client_certificate_from_another_ca(
    aio_loop: None, tmp_path: Path, ca: CertAuthority, server_cert: CertFiles
) -> None:
    stranger = CertAuthority(tmp_path / "stranger", "stranger CA").issue(
        "mallory", server=False, client=True
    )
    recorder = Recorder()
    tls = ServerTls(TlsFiles(server_cert.cert, server_cert.key, ca.cert_path))
    async with serving(recorder, tls) as endpoint:
        with pytest.raises(VStreamError) as info:
            await stream_all(endpoint.port, client(ca.cert_path, stranger))
    assert info.value.code == Code.UNAVAILABLE
    assert recorder.identities == []


async def test_mutual_tls_gives_the_handler_the_callers_subject_and_common_name(
    aio_loop: None, ca: CertAuthority, server_cert: CertFiles
) -> None:
    alice = ca.issue("alice", server=False, client=True, organization="Example, Inc.")
    recorder = Recorder()
    tls = ServerTls(TlsFiles(server_cert.cert, server_cert.key, ca.cert_path))
    async with serving(recorder, tls) as endpoint:
        assert await stream_all(endpoint.port, client(ca.cert_path, alice)) == [[1]]
    # RFC 4514, most specific first, as Go's pkix.Name.String() (vtgate) writes it.
    assert recorder.identities == [("CN=alice,O=Example\\, Inc.", "alice")]


async def test_reload_keeps_running_streams_and_new_connections_see_the_new_certificate(
    aio_loop: None, tmp_path: Path, ca: CertAuthority
) -> None:
    # The files the server reads live at fixed paths; a reload reads them again.
    live = tmp_path / "live"
    live.mkdir()
    first = ca.issue("gateway")
    files = TlsFiles(live / "cert.pem", live / "key.pem")
    files.cert.write_bytes(first.cert.read_bytes())  # type: ignore[union-attr]
    files.key.write_bytes(first.key.read_bytes())  # type: ignore[union-attr]
    tls = ServerTls(files)
    renewed_ca = CertAuthority(tmp_path / "renewed", "renewed CA")
    renewed = renewed_ca.issue("gateway")

    recorder = Recorder()
    recorder.hold = True
    async with serving(recorder, tls) as endpoint:
        address = f"127.0.0.1:{endpoint.port}"
        with trio.fail_after(10):
            async with open_vstream(
                address, vtgate.VStreamRequest(), tls=client(ca.cert_path)
            ) as running:
                first_response = await running.receive()
                assert first_response is not None

                files.cert.write_bytes(renewed.cert.read_bytes())  # type: ignore[union-attr]
                files.key.write_bytes(renewed.key.read_bytes())  # type: ignore[union-attr]
                tls.reload()

                # A new connection gets the new certificate: trusted by the
                # renewed CA only.
                recorder.hold = False
                assert await stream_all(endpoint.port, client(renewed_ca.cert_path)) == [[1]]
                with pytest.raises(VStreamError, match="certificate is not trusted"):
                    await stream_all(endpoint.port, client(ca.cert_path))

                # The stream that was running carries on over its old connection.
                recorder.release.set()
                second = await running.receive()
                assert second is not None
                assert [e.type for e in second.events] == [2]
                assert await running.receive() is None


async def test_reload_takes_up_a_new_client_ca(
    aio_loop: None, tmp_path: Path, ca: CertAuthority, server_cert: CertFiles
) -> None:
    partners = CertAuthority(tmp_path / "partners", "partner CA")
    ours, theirs = (
        ca.issue("alice", server=False, client=True),
        partners.issue("bob", server=False, client=True),
    )
    client_ca = tmp_path / "client-ca.pem"
    client_ca.write_bytes(ca.cert_path.read_bytes())
    tls = ServerTls(TlsFiles(server_cert.cert, server_cert.key, client_ca))
    recorder = Recorder()
    async with serving(recorder, tls) as endpoint:
        assert await stream_all(endpoint.port, client(ca.cert_path, ours)) == [[1]]
        client_ca.write_bytes(partners.cert_path.read_bytes())
        tls.reload()
        assert await stream_all(endpoint.port, client(ca.cert_path, theirs)) == [[1]]
        with pytest.raises(VStreamError):
            await stream_all(endpoint.port, client(ca.cert_path, ours))
    assert [name for _, name in recorder.identities] == ["alice", "bob"]


async def test_a_failed_reload_keeps_the_certificates_in_use(
    aio_loop: None, tmp_path: Path, ca: CertAuthority
) -> None:
    first = ca.issue("gateway")
    live = tmp_path / "live"
    live.mkdir()
    files = TlsFiles(live / "cert.pem", live / "key.pem", option_prefix="--grpc_")
    files.cert.write_bytes(first.cert.read_bytes())  # type: ignore[union-attr]
    files.key.write_bytes(first.key.read_bytes())  # type: ignore[union-attr]
    tls = ServerTls(files)
    files.key.write_text("half-written")  # type: ignore[union-attr]
    with pytest.raises(TlsFileError, match=r"^--grpc_key .*key\.pem: no PEM private key in it$"):
        tls.reload()
    async with serving(Recorder(), tls) as endpoint:
        assert await stream_all(endpoint.port, client(ca.cert_path)) == [[1]]


def encrypted_copy(key: Path, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    path.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            "missing cert",
            r"^--grpc_cert {dir}/nope\.pem: cannot read it: No such file or directory$",
        ),
        ("missing key", r"^--grpc_key {dir}/nope\.pem: cannot read it: No such file or directory$"),
        ("missing ca", r"^--grpc_ca {dir}/nope\.pem: cannot read it: No such file or directory$"),
        ("cert not pem", r"^--grpc_cert {dir}/junk\.pem: no PEM certificate in it$"),
        ("ca not pem", r"^--grpc_ca {dir}/junk\.pem: no PEM certificate in it$"),
        ("key of another cert", r"^--grpc_key .*other-key\.pem: not the key of --grpc_cert "),
        ("encrypted key", r"^--grpc_key .*locked\.pem: the key is encrypted; give it unencrypted"),
    ],
)
def test_unusable_files_are_named_with_their_option(
    tmp_path: Path, ca: CertAuthority, server_cert: CertFiles, breakage: str, message: str
) -> None:
    nope = tmp_path / "nope.pem"
    junk = write(tmp_path / "junk.pem", "not a certificate\n")
    cert, key, ca_file = server_cert.cert, server_cert.key, ca.cert_path
    if breakage == "missing cert":
        cert = nope
    elif breakage == "missing key":
        key = nope
    elif breakage == "missing ca":
        ca_file = nope
    elif breakage == "cert not pem":
        cert = junk
    elif breakage == "ca not pem":
        ca_file = junk
    elif breakage == "encrypted key":
        key = encrypted_copy(server_cert.key, tmp_path / "locked.pem")
    else:
        key = ca.issue("other").key
    with pytest.raises(TlsFileError, match=message.format(dir=str(tmp_path))):
        ServerTls(TlsFiles(cert, key, ca_file, option_prefix="--grpc_"))


def test_a_certificate_without_its_key_is_refused_by_option_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^--tablet_grpc_cert needs --tablet_grpc_key too$"):
        TlsFiles(cert=tmp_path / "c.pem", option_prefix="--tablet_grpc_")
    with pytest.raises(ValueError, match=r"^--key needs --cert too$"):
        TlsFiles(key=tmp_path / "k.pem")
    assert not TlsFiles().enabled
    assert TlsFiles(server_name="tablet").enabled


class _Peer:
    def __init__(self, cert: Any) -> None:
        self._cert = cert

    def cert(self) -> Any:
        return self._cert


class _Stream:
    def __init__(self, cert: Any) -> None:
        self.peer = _Peer(cert)


@pytest.mark.parametrize(
    ("cert", "identity"),
    [
        (None, (None, None)),  # plaintext
        ({}, (None, None)),  # TLS, no verified client certificate
        (
            {
                "subject": (
                    (("countryName", "US"),),
                    (("organizationName", "Acme"),),
                    (("organizationalUnitName", "cdc"),),
                    (("commonName", "debezium"),),
                )
            },
            ("CN=debezium,OU=cdc,O=Acme,C=US", "debezium"),
        ),
        (
            {"subject": ((("organizationName", " lead#"),), (("commonName", "a+b;c"),))},
            ("CN=a\\+b\\;c,O=\\ lead#", "a+b;c"),
        ),
        ({"subject": ((("organizationName", "no name"),),)}, ("O=no name", None)),
    ],
)
def test_peer_identity_in_rfc4514_form(cert: Any, identity: tuple[str | None, ...]) -> None:
    assert peer_identity(_Stream(cert)) == identity


def test_peer_identity_of_a_stream_without_peer_info_is_none() -> None:
    assert peer_identity(object()) == (None, None)


# -- tablets over TLS ------------------------------------------------------------


@asynccontextmanager
async def tls_tablets(tls: ServerTls) -> AsyncIterator[list[TabletInfo]]:
    cluster = SimulatedCluster.build({"commerce": ["0"]}, seed=1)
    async with serve_cluster_tablets(cluster, "127.0.0.1", tls=tls) as topology:
        yield topology.tablets


async def first_batch(tablet: TabletInfo, tls: ClientTls | None) -> list[int]:
    async with open_tablet_channels(5, tls=tls) as channels:
        request = binlogdata.VStreamRequest(position="current")
        with trio.fail_after(10):
            async with channels.source(tablet).vstream(request) as batches:
                async for batch in batches:
                    return [frame.type for frame in batch]
    raise AssertionError("the tablet stream ended without a batch")


async def test_tablets_served_over_mutual_tls_stream_to_a_tls_client(
    aio_loop: None, ca: CertAuthority, server_cert: CertFiles
) -> None:
    gateway_cert = ca.issue("vsmux-gateway", server=False, client=True)
    tls = ServerTls(TlsFiles(server_cert.cert, server_cert.key, ca.cert_path))
    async with tls_tablets(tls) as tablets:
        types = await first_batch(tablets[0], client(ca.cert_path, gateway_cert))
        assert types  # a 'current' start begins with its position
        with pytest.raises(VStreamError) as info:
            await first_batch(tablets[0], client(ca.cert_path))  # no client certificate
        assert info.value.code == Code.UNAVAILABLE
        with pytest.raises(VStreamError):
            await first_batch(tablets[0], None)  # plaintext


async def test_the_tablet_server_name_overrides_the_host_checked(
    aio_loop: None, ca: CertAuthority
) -> None:
    named = ca.issue("tablet", hosts=("tablet.vitess.internal",))
    tls = ServerTls(TlsFiles(named.cert, named.key))
    async with tls_tablets(tls) as tablets:
        with pytest.raises(VStreamError, match=r"match|mismatch"):
            await first_batch(tablets[0], client(ca.cert_path))  # 127.0.0.1 is not in it
        types = await first_batch(tablets[0], client(ca.cert_path, name="tablet.vitess.internal"))
        assert types
