"""TLS for the gateway's port, its tablet connections and its client.

Server side: :class:`ServerTls` is the TLS a port offers, built from a
certificate, its key and, for mutual TLS, the CA that client certificates
must be signed by (with a CA, a client without a valid certificate fails the
handshake). :meth:`ServerTls.reload` reads the files again: the context a
server listens with stays the same object, and hands each new handshake the
context loaded last (its ``sni_callback``, which OpenSSL calls for every
handshake, SNI or not), so connections already open keep theirs and their
streams run on, while the next connection sees the new certificate and CA.
A reload that fails changes nothing.

Client side: :func:`client_context` is the context a tablet channel or
``vsmux tail`` connects with: the CA to verify the server by (the system's
when none is given), a client certificate to present, and ALPN ``h2``.

Files are checked one by one, so a missing or unusable file is named with
the option it came from (:class:`TlsFiles` carries the option prefix):
:class:`TlsFileError`.

Who the caller is: :func:`peer_identity` reads the certificate a client
presented on a mutual-TLS connection, already verified by the handshake, as
its subject (RFC 4514 string form, the most specific name first, as Go's
``pkix.Name.String()`` writes it, so a vtgate allowed-substring matches the
same way) and its common name. A plaintext connection, or TLS without client
certificates, has neither.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ClientTls",
    "ServerTls",
    "TlsFileError",
    "TlsFiles",
    "client_context",
    "handshake_failure",
    "peer_identity",
]

# HTTP/2 is what gRPC speaks; a TLS client that cannot agree on it is refused.
_ALPN = ["h2"]


class TlsFileError(Exception):
    """A certificate, key or CA file that cannot be used.

    ``option`` names where the file came from (``--grpc_cert``), ``path`` is
    the file and ``reason`` what is wrong with it; ``str()`` says all three.
    """

    def __init__(self, option: str, path: Path, reason: str) -> None:
        super().__init__(f"{option} {path}: {reason}")
        self.option = option
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The files of one TLS configuration and how to name them in messages.

    ``option_prefix`` plus ``cert``, ``key`` or ``ca`` is the option each file
    was given with (``--grpc_``, ``--tablet_grpc_``, ``--``). ``server_name``
    is, for a client, the name the server's certificate must carry (default:
    the host connected to).
    """

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    server_name: str | None = None
    option_prefix: str = "--"

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            given, missing = ("cert", "key") if self.key is None else ("key", "cert")
            raise ValueError(f"{self.option_prefix}{given} needs {self.option_prefix}{missing} too")

    @property
    def enabled(self) -> bool:
        """Whether anything was given: a client connects with TLS then."""
        return any(x is not None for x in (self.cert, self.key, self.ca, self.server_name))

    def option(self, role: str) -> str:
        return f"{self.option_prefix}{role}"


def _read(files: TlsFiles, role: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFileError(files.option(role), path, f"cannot read it: {exc.strerror}") from None


def _load_chain(context: ssl.SSLContext, files: TlsFiles) -> None:
    """The certificate and key into ``context``; TlsFileError names the file at fault."""
    assert files.cert is not None and files.key is not None
    cert = _read(files, "cert", files.cert)
    key = _read(files, "key", files.key)
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise TlsFileError(files.option("cert"), files.cert, "no PEM certificate in it")
    if b"PRIVATE KEY-----" not in key:
        raise TlsFileError(files.option("key"), files.key, "no PEM private key in it")
    if b"ENCRYPTED" in key:
        raise TlsFileError(
            files.option("key"), files.key, "the key is encrypted; give it unencrypted (PEM)"
        )
    try:
        # No password: OpenSSL would otherwise ask for one on the terminal.
        context.load_cert_chain(files.cert, files.key, password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise TlsFileError(
                files.option("key"),
                files.key,
                f"not the key of {files.option('cert')} {files.cert}",
            ) from None
        raise TlsFileError(
            files.option("cert"), files.cert, f"cannot load it with {files.option('key')}: {exc}"
        ) from None
    except OSError as exc:  # the files changed between the reads above and here
        raise TlsFileError(
            files.option("cert"), files.cert, f"cannot read it: {exc.strerror}"
        ) from None


def _no_password() -> bytes:
    raise ssl.SSLError("the key needs a password")


def _load_ca(context: ssl.SSLContext, files: TlsFiles) -> None:
    assert files.ca is not None
    data = _read(files, "ca", files.ca)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise TlsFileError(files.option("ca"), files.ca, "no PEM certificate in it")
    try:
        context.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise TlsFileError(files.option("ca"), files.ca, f"cannot load it: {exc}") from None


def _server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(_ALPN)
    _load_chain(context, files)
    if files.ca is not None:
        _load_ca(context, files)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class ServerTls:
    """The TLS a server port offers, from ``files`` (cert and key; with ca: mutual TLS).

    Raises :class:`TlsFileError` (or ValueError without cert and key) if the
    files cannot be used. Give :attr:`context` to the server; call
    :meth:`reload` to take up new files for new connections.
    """

    def __init__(self, files: TlsFiles) -> None:
        if files.cert is None or files.key is None:
            raise ValueError(
                f"TLS on a server needs {files.option('cert')} and {files.option('key')}"
            )
        self.files = files
        #: The context to listen with. It stays the same object across reloads.
        self.context = _server_context(files)
        self._current = self.context
        self.context.sni_callback = self._choose

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate signed by the CA."""
        return self.files.ca is not None

    def reload(self) -> None:
        """Read the files again; new handshakes use them, open connections keep theirs.

        Raises :class:`TlsFileError` and keeps the previous certificates if a
        file cannot be used.
        """
        fresh = _server_context(self.files)
        fresh.sni_callback = self._choose
        self._current = fresh

    def _choose(
        self, connection: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: ssl.SSLContext
    ) -> None:
        # Called by OpenSSL for every handshake on a context of ours (with or
        # without SNI), before the certificate is chosen and the client's verified.
        current = self._current
        if context is not current:
            connection.context = current


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client's TLS context: verify the server by ``files.ca`` (default: the
    system's CAs), present ``files.cert``/``files.key`` if given, speak h2.

    Raises :class:`TlsFileError` naming a file that cannot be used.
    """
    if files.ca is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # Only the CA given, as vtgate does: not the system's besides.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the server and its name
        _load_ca(context, files)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(_ALPN)
    if files.cert is not None:
        _load_chain(context, files)
    return context


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How a client connects with TLS: its context and the name the server must carry.

    ``server_name`` None means the host connected to (an IP address matches
    an IP entry of the server certificate's alternative names).
    """

    context: ssl.SSLContext
    server_name: str | None = None
    #: Whether the context presents a client certificate.
    client_certificate: bool = False

    @classmethod
    def load(cls, files: TlsFiles) -> ClientTls:
        """From ``files`` (:func:`client_context`); raises :class:`TlsFileError`."""
        return cls(client_context(files), files.server_name, files.cert is not None)


def handshake_failure(exc: BaseException | None) -> str | None:
    """What went wrong, when ``exc`` is a TLS handshake that failed; None otherwise.

    These are settings to fix, not failures to retry: a server certificate
    that does not verify (unknown CA, wrong name, expired), a server that
    refused ours, a port that does not speak TLS. Other TLS errors (a
    connection cut mid-record) are connection failures like any other.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        return f"the server's certificate is not trusted: {detail}"
    if not isinstance(exc, ssl.SSLError) or not exc.reason:
        return None
    if exc.reason == "WRONG_VERSION_NUMBER":
        return "the server does not speak TLS on this port"
    if "ALERT" in exc.reason:
        alert = exc.reason.split("ALERT_", 1)[-1].replace("_", " ").lower()
        return f"the server refused the handshake: {alert}"
    return None


# Attribute names as ssl.getpeercert() gives them -> RFC 4514 short names.
_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def peer_identity(stream: Any) -> tuple[str | None, str | None]:
    """The verified client certificate's (subject, common name) on ``stream``'s connection.

    ``stream`` is a grpclib server stream. (None, None) without a verified
    client certificate; the common name is None when the subject has none.
    """
    try:
        cert = stream.peer.cert()
    except Exception:  # identity is read from the connection; none is None
        return None, None
    if not cert:  # plaintext, or TLS without a verified client certificate
        return None, None
    rdns: tuple[tuple[tuple[str, str], ...], ...] = cert.get("subject", ())
    common_name = next((value for rdn in rdns for key, value in rdn if key == "commonName"), None)
    subject = ",".join(
        "+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn)
        for rdn in reversed(rdns)
    )
    return subject, common_name


def _escape(value: str) -> str:
    """``value`` escaped for an RFC 4514 string."""
    out = "".join(f"\\{c}" if c in ',+"\\<>;' else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and len(out) > 1:
        out = out[:-1] + "\\ "
    return out
