"""Who is calling: vtgate's gRPC authentication modes, as pure rules.

``vsmux serve --grpc_auth_mode`` picks one, as vtgate's flag of that name does:

- ``static``: every VStream and Execute call carries gRPC metadata
  ``username`` and ``password`` (what Debezium's connector sends for
  ``vitess.username`` / ``vitess.password``), checked against the entries of
  ``--grpc_auth_static_password_file``. The caller's name is the username.
- ``mtls``: the call must come on a mutual-TLS connection whose verified
  client certificate's subject contains one of
  ``--grpc_auth_mtls_allowed_substrings`` (colon-separated, as vtgate reads
  them; none given admits every certificate the CA verified, as in vtgate).
  The caller's name is the certificate's common name.

Anything else is refused with UNAUTHENTICATED; the message says what was
missing or that the credentials did not match, never which part, and never
the password. Passwords are compared with :func:`hmac.compare_digest` (an
unknown user costs the same comparison), and nothing here logs.

The password file is vtgate's (``StaticAuthConfigEntry``): a JSON list of
objects with ``Username`` and ``Password``. Keys are matched ignoring case,
as Go's JSON decoder does; other keys (``UserData``, ``Groups``) are
accepted and ignored. A username may appear more than once, each entry one
password it may use (rotation: add the new one, then remove the old).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from vsmux.core.quoting import quote
from vsmux.errors import Code, VStreamError

__all__ = [
    "AUTH_MODES",
    "Authenticator",
    "MtlsAuthenticator",
    "PasswordFileError",
    "StaticAuthenticator",
    "parse_password_file",
    "parse_substrings",
]

#: ``--grpc_auth_mode`` values; "" (the default) is no authentication.
AUTH_MODES = ("", "static", "mtls")

# Compared against when the username is unknown, so that case costs what a
# wrong password costs.
_NO_PASSWORD = b"\x00" * 32


class PasswordFileError(ValueError):
    """The password file cannot be used; the message says where and why."""


class Authenticator(Protocol):
    """Turns what a call presents into the caller's name, or raises UNAUTHENTICATED."""

    def authenticate(
        self, metadata: Mapping[str, str], subject: str | None, common_name: str | None
    ) -> str: ...


def parse_password_file(text: str) -> dict[str, tuple[bytes, ...]]:
    """Username -> the passwords it may use (UTF-8), from a password file's text."""
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise PasswordFileError(f"not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise PasswordFileError('must be a JSON list of {"Username": ..., "Password": ...} objects')
    users: dict[str, list[bytes]] = {}
    for index, entry in enumerate(entries):
        where = f"entry {index + 1}"
        if not isinstance(entry, dict):
            raise PasswordFileError(f'{where}: not an object with "Username" and "Password"')
        fields = {str(key).lower(): value for key, value in entry.items()}
        username = fields.get("username")
        password = fields.get("password")
        if not isinstance(username, str) or not username:
            raise PasswordFileError(f'{where}: "Username" must be a non-empty string')
        if not isinstance(password, str) or not password:
            raise PasswordFileError(
                f'{where} (user {quote(username)}): "Password" must be a non-empty string'
            )
        users.setdefault(username, []).append(password.encode())
    if not users:
        raise PasswordFileError("has no entries: no one could authenticate")
    return {name: tuple(passwords) for name, passwords in users.items()}


def parse_substrings(value: str) -> tuple[str, ...]:
    """``--grpc_auth_mtls_allowed_substrings``: colon-separated, empty parts dropped."""
    return tuple(part for part in (p.strip() for p in value.split(":")) if part)


@dataclass(frozen=True, slots=True)
class StaticAuthenticator:
    """``--grpc_auth_mode static``: metadata ``username`` and ``password``."""

    users: Mapping[str, tuple[bytes, ...]]

    def authenticate(
        self, metadata: Mapping[str, str], subject: str | None, common_name: str | None
    ) -> str:
        username = metadata.get("username", "")
        password = metadata.get("password", "")
        if not username or not password:
            raise VStreamError(
                Code.UNAUTHENTICATED,
                "username and password must be provided as gRPC metadata 'username' and "
                "'password' (the gateway runs with --grpc_auth_mode static)",
            )
        given = password.encode()
        matched = False
        for known in self.users.get(username, (_NO_PASSWORD,)):
            matched |= hmac.compare_digest(given, known)
        if not matched or username not in self.users:
            raise VStreamError(
                Code.UNAUTHENTICATED,
                f"auth failure: caller {quote(username, 64)} provided invalid credentials",
            )
        return username


@dataclass(frozen=True, slots=True)
class MtlsAuthenticator:
    """``--grpc_auth_mode mtls``: a verified client certificate with an allowed subject."""

    substrings: tuple[str, ...]

    def authenticate(
        self, metadata: Mapping[str, str], subject: str | None, common_name: str | None
    ) -> str:
        if subject is None:
            raise VStreamError(
                Code.UNAUTHENTICATED,
                "no verified client certificate: the gateway runs with --grpc_auth_mode mtls; "
                "connect with TLS and a certificate signed by its --grpc_ca",
            )
        if self.substrings and not any(part in subject for part in self.substrings):
            raise VStreamError(
                Code.UNAUTHENTICATED,
                f"client certificate {quote(subject, 128)} not authorized: its subject "
                "contains none of --grpc_auth_mtls_allowed_substrings",
            )
        if not common_name:
            raise VStreamError(
                Code.UNAUTHENTICATED,
                f"client certificate {quote(subject, 128)} has no common name (CN) "
                "to name the caller by",
            )
        return common_name
