"""TLS for the gateway's port, its tablet connections and its client.

Who the caller is: :func:`peer_identity` reads the certificate a client
presented on a mutual-TLS connection, already verified by the handshake, as
its subject (RFC 4514 string form, the most specific name first, as Go's
``pkix.Name.String()`` writes it, so a vtgate allowed-substring matches the
same way) and its common name. A plaintext connection, or TLS without client
certificates, has neither.
"""

from __future__ import annotations

from typing import Any

__all__ = ["peer_identity"]

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
