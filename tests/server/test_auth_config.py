"""``vsmux serve``'s security options: files read once, mistakes stop the start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.server.gw_helpers import small_topology
from vsmux.cli.main import main
from vsmux.core.access import parse_access_file
from vsmux.core.auth import MtlsAuthenticator, StaticAuthenticator
from vsmux.proto import query, vtgate, vtrpc
from vsmux.server.auth import SecurityConfigError, load_security
from vsmux.server.execute import answer_execute
from vsmux.server.tables import StaticTableCatalog

PASSWORDS = '[{"Username": "debezium", "Password": "s3cret"}]'
ACCESS = '[users.debezium]\nkeyspaces = ["commerce"]\nmetadata = false\n'


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    passwords = tmp_path / "passwords.json"
    passwords.write_text(PASSWORDS)
    access = tmp_path / "access.toml"
    access.write_text(ACCESS)
    return passwords, access


def test_static_with_access_file(files: tuple[Path, Path]) -> None:
    passwords, access = files
    security = load_security("static", password_file=passwords, access_file=access)
    assert isinstance(security.authenticator, StaticAuthenticator)
    assert security.grant_for("debezium").may_read("commerce")
    assert not security.grant_for("someone").listed
    assert security.grant_for(None).may_read("anything")  # no auth: no access file applies


def test_no_access_file_is_said_once(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "vsmux.server"):
        security = load_security("static", password_file=files[0])
    assert security.access is None
    assert "every authenticated user may stream every keyspace" in caplog.text
    assert "s3cret" not in caplog.text


def test_mtls_mode_reads_colon_separated_substrings() -> None:
    security = load_security("mtls", mtls_allowed_substrings="O=cdc:CN=ops")
    assert security.authenticator == MtlsAuthenticator(("O=cdc", "CN=ops"))


@pytest.mark.parametrize(
    ("mode", "kwargs", "words"),
    [
        ("ldap", {}, "not one of"),
        ("static", {}, "needs --grpc_auth_static_password_file"),
        ("static", {"password_file": Path("/nonexistent/p.json")}, "cannot read"),
        ("mtls", {"client_certificates": False}, "needs client certificates"),
        ("", {"mtls_allowed_substrings": "CN=x"}, "need --grpc_auth_mode"),
        ("", {"access_file": Path("a.toml")}, "--access-file needs --grpc_auth_mode"),
    ],
)
def test_unusable_options_are_refused(mode: str, kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(SecurityConfigError, match=words):
        load_security(mode, **kwargs)  # type: ignore[arg-type]


def test_bad_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text('{"Username": "a"}')
    with pytest.raises(SecurityConfigError, match=f"password file {bad}: must be a JSON list"):
        load_security("static", password_file=bad)
    good = tmp_path / "good.json"
    good.write_text(PASSWORDS)
    access = tmp_path / "a.toml"
    access.write_text("[users.a]\nkeyspace = []\n")
    with pytest.raises(SecurityConfigError, match=f"access file {access}: .*unknown key"):
        load_security("static", password_file=good, access_file=access)


@pytest.mark.parametrize("spelling", ["--grpc_auth_mode", "--grpc-auth-mode"])
def test_serve_stops_on_security_mistakes_in_either_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    topology = tmp_path / "topology.toml"
    topology.write_text(
        'cell = "zone1"\n[keyspaces.commerce]\nshards = ["-"]\n'
        '[[tablets]]\nkeyspace = "commerce"\nshard = "-"\ntype = "primary"\nuid = 1\n'
        "simulated = true\n"
    )
    assert main(["serve", "--topology", str(topology), spelling, "static"]) == 2
    assert "needs --grpc_auth_static_password_file" in capsys.readouterr().err
    argv = ["serve", "--topology", str(topology), "--access_file", str(tmp_path / "a.toml")]
    assert main(argv) == 2
    assert "--access-file needs --grpc_auth_mode" in capsys.readouterr().err


async def test_metadata_false_refuses_every_metadata_query() -> None:
    grant = parse_access_file(ACCESS).grant_for("debezium")
    request = vtgate.ExecuteRequest(query=query.BoundQuery(sql="SHOW DATABASES"))
    response = await answer_execute(
        request, small_topology(), StaticTableCatalog({}), grant=grant, user="debezium"
    )
    assert response.error is not None
    assert response.error.code == vtrpc.Code.PERMISSION_DENIED
    assert response.error.message == "user 'debezium' may not run metadata queries on this gateway"


async def test_unlisted_user_is_told_it_has_no_entry() -> None:
    grant = parse_access_file(ACCESS).grant_for("stranger")
    request = vtgate.ExecuteRequest(query=query.BoundQuery(sql="SHOW DATABASES"))
    response = await answer_execute(
        request, small_topology(), StaticTableCatalog({}), grant=grant, user="stranger"
    )
    assert response.error is not None
    assert response.error.message == "user 'stranger' has no entry in the gateway's access file"
