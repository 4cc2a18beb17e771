"""The gateway's security settings: who is calling, and what they may read.

:class:`Security` joins the authenticator of ``--grpc_auth_mode``
(:mod:`vsmux.core.auth`) and the access file (:mod:`vsmux.core.access`);
:func:`load_security` builds it from ``vsmux serve``'s options, reading the
files once at start-up. The VStream and Execute handlers ask it for the
caller's name and grant; health and reflection are not behind it (a load
balancer's probe carries no credentials; vtgate's health check is not
authenticated either), so they stay open to anyone who can connect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vsmux.core.access import FULL_ACCESS, AccessFileError, AccessPolicy, Grant, parse_access_file
from vsmux.core.auth import (
    AUTH_MODES,
    Authenticator,
    MtlsAuthenticator,
    PasswordFileError,
    StaticAuthenticator,
    parse_password_file,
    parse_substrings,
)
from vsmux.transport import Call

__all__ = ["Security", "SecurityConfigError", "load_security"]

log = logging.getLogger("vsmux.server")


class SecurityConfigError(ValueError):
    """The security options cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Security:
    """How calls are authenticated (None: not at all) and the access file (None: none)."""

    authenticator: Authenticator | None = None
    access: AccessPolicy | None = None

    def identify(self, call: Call) -> str | None:
        """The authenticated caller's name, None without authentication; else UNAUTHENTICATED."""
        if self.authenticator is None:
            return None
        return self.authenticator.authenticate(
            call.metadata, call.peer_subject, call.peer_common_name
        )

    def grant_for(self, user: str | None) -> Grant:
        """What ``user`` may read: everything without an access file."""
        if self.access is None or user is None:
            return FULL_ACCESS
        return self.access.grant_for(user)


def load_security(
    mode: str,
    *,
    password_file: Path | None = None,
    mtls_allowed_substrings: str = "",
    access_file: Path | None = None,
    client_certificates: bool | None = None,
) -> Security:
    """The :class:`Security` of ``vsmux serve``'s options; SecurityConfigError if unusable.

    ``client_certificates`` says whether the port verifies client certificates
    (``--grpc_ca``); None when unknown. Logs, once, what the gateway will do.
    """
    if mode not in AUTH_MODES:
        raise SecurityConfigError(
            f"--grpc_auth_mode {mode!r} is not one of: static, mtls (or leave it unset)"
        )
    authenticator: Authenticator | None = None
    if mode == "static":
        if password_file is None:
            raise SecurityConfigError(
                "--grpc_auth_mode static needs --grpc_auth_static_password_file"
            )
        try:
            users = parse_password_file(password_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SecurityConfigError(f"cannot read {password_file}: {exc.strerror}") from None
        except PasswordFileError as exc:
            raise SecurityConfigError(f"password file {password_file}: {exc}") from None
        authenticator = StaticAuthenticator(users)
        log.info("static authentication: %d users from %s", len(users), password_file)
    elif mode == "mtls":
        if client_certificates is False:
            raise SecurityConfigError(
                "--grpc_auth_mode mtls needs client certificates: give --grpc_cert, "
                "--grpc_key and --grpc_ca"
            )
        substrings = parse_substrings(mtls_allowed_substrings)
        authenticator = MtlsAuthenticator(substrings)
        if substrings:
            log.info("mTLS authentication: subjects containing %s", " or ".join(substrings))
        else:
            log.warning(
                "mTLS authentication without --grpc_auth_mtls_allowed_substrings: every "
                "certificate the CA signed is admitted"
            )
    elif password_file is not None or mtls_allowed_substrings:
        raise SecurityConfigError(
            "--grpc_auth_static_password_file and --grpc_auth_mtls_allowed_substrings "
            "need --grpc_auth_mode"
        )
    access: AccessPolicy | None = None
    if access_file is not None:
        if authenticator is None:
            raise SecurityConfigError(
                "--access-file needs --grpc_auth_mode static or mtls: without "
                "authentication a caller's name is whatever it says"
            )
        try:
            access = parse_access_file(access_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SecurityConfigError(f"cannot read {access_file}: {exc.strerror}") from None
        except AccessFileError as exc:
            raise SecurityConfigError(f"access file {access_file}: {exc}") from None
        log.info("access file %s: grants for %d users", access_file, len(access.grants))
    elif authenticator is not None:
        log.warning(
            "no --access-file: every authenticated user may stream every keyspace "
            "and see all metadata"
        )
    else:
        log.info("no --grpc_auth_mode: any client that can connect may stream every keyspace")
    return Security(authenticator, access)
