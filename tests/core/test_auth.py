"""Static and mTLS authentication rules, and vtgate's password file."""

from __future__ import annotations

import pytest

from vsmux.core.auth import (
    MtlsAuthenticator,
    PasswordFileError,
    StaticAuthenticator,
    parse_password_file,
    parse_substrings,
)
from vsmux.errors import Code, VStreamError

VTGATE_FILE = """[
  {"Username": "debezium", "Password": "s3cret"},
  {"Username": "ops", "Password": "old", "UserData": "x", "Groups": ["admins"]},
  {"username": "ops", "password": "new"}
]"""


def users() -> StaticAuthenticator:
    return StaticAuthenticator(parse_password_file(VTGATE_FILE))


def test_vtgate_file_extras_ignored_keys_any_case_and_several_passwords() -> None:
    parsed = parse_password_file(VTGATE_FILE)
    assert parsed == {"debezium": (b"s3cret",), "ops": (b"old", b"new")}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{", "not JSON"),
        ('{"Username": "a"}', "JSON list"),
        ("[1]", "entry 1"),
        ('[{"Password": "p"}]', '"Username"'),
        ('[{"Username": "a", "Password": ""}]', "user 'a'"),
        ("[]", "no entries"),
    ],
)
def test_bad_password_files_say_where(text: str, words: str) -> None:
    with pytest.raises(PasswordFileError, match=words):
        parse_password_file(text)


def test_bad_password_file_message_never_holds_a_password() -> None:
    with pytest.raises(PasswordFileError) as info:
        parse_password_file('[{"Username": "a", "Password": 12345}]')
    assert "12345" not in str(info.value)


def test_right_credentials_name_the_caller() -> None:
    auth = users()
    assert auth.authenticate({"username": "debezium", "password": "s3cret"}, None, None) == (
        "debezium"
    )
    assert auth.authenticate({"username": "ops", "password": "new"}, None, None) == "ops"
    assert auth.authenticate({"username": "ops", "password": "old"}, None, None) == "ops"


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({}, "must be provided"),
        ({"username": "debezium"}, "must be provided"),
        ({"password": "s3cret"}, "must be provided"),
        ({"username": "debezium", "password": "wrong"}, "invalid credentials"),
        ({"username": "nobody", "password": "s3cret"}, "invalid credentials"),
        ({"username": "ops", "password": "s3cret"}, "invalid credentials"),
    ],
)
def test_missing_or_wrong_credentials_are_unauthenticated(
    metadata: dict[str, str], words: str
) -> None:
    with pytest.raises(VStreamError) as info:
        users().authenticate(metadata, None, None)
    assert info.value.code == Code.UNAUTHENTICATED
    assert words in info.value.message
    assert "s3cret" not in info.value.message and "wrong" not in info.value.message


def test_substrings_are_colon_separated() -> None:
    assert parse_substrings("CN=app:OU=cdc: ") == ("CN=app", "OU=cdc")
    assert parse_substrings("") == ()


def test_mtls_admits_subjects_with_an_allowed_substring_named_by_common_name() -> None:
    auth = MtlsAuthenticator(("OU=cdc", "CN=ops"))
    assert auth.authenticate({}, "CN=debezium,OU=cdc,O=Example", "debezium") == "debezium"
    with pytest.raises(VStreamError) as info:
        auth.authenticate({}, "CN=intruder,O=Example", "intruder")
    assert info.value.code == Code.UNAUTHENTICATED
    assert "not authorized" in info.value.message
    with pytest.raises(VStreamError) as info:
        auth.authenticate({"username": "debezium", "password": "x"}, None, None)
    assert "no verified client certificate" in info.value.message
    with pytest.raises(VStreamError, match="no common name"):
        auth.authenticate({}, "OU=cdc,O=Example", None)


def test_mtls_without_substrings_admits_every_verified_certificate() -> None:
    assert MtlsAuthenticator(()).authenticate({}, "CN=x", "x") == "x"
