"""The access file and what it lets a caller stream, decided without a tablet."""

from __future__ import annotations

import pytest

from vsmux.core.access import (
    FULL_ACCESS,
    AccessFileError,
    authorize_vstream,
    parse_access_file,
)
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, vtgate
from vsmux.topology import KeyspaceInfo, Topology

ACCESS = """
[users.debezium]
keyspaces = ["commerce", "customer"]

[users.debezium.tables]
customer = ["customer", "corder"]

[users.reader]
keyspaces = ["commerce", "customer"]

[users.ops]
keyspaces = ["*"]
metadata = false
"""


def topology() -> Topology:
    names = ["commerce", "customer", "internal"]
    return Topology(
        cell="zone1",
        keyspaces={name: KeyspaceInfo(name, ["-80", "80-"]) for name in names},
        tablets=[],
    )


def request(
    *keyspaces: str, rules: list[tuple[str, str]] | None = None, gtid: str = "current"
) -> vtgate.VStreamRequest:
    return vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(
            shard_gtids=[binlogdata.ShardGtid(keyspace=ks, gtid=gtid) for ks in keyspaces]
        ),
        filter=None
        if rules is None
        else binlogdata.Filter(rules=[binlogdata.Rule(match=m, filter=f) for m, f in rules]),
    )


def denied(req: vtgate.VStreamRequest, user: str = "debezium") -> str:
    grant = parse_access_file(ACCESS).grant_for(user)
    with pytest.raises(VStreamError) as info:
        authorize_vstream(req, topology(), user, grant)
    assert info.value.code == Code.PERMISSION_DENIED
    return info.value.message


def allowed(req: vtgate.VStreamRequest, user: str = "debezium") -> list[str]:
    grant = parse_access_file(ACCESS).grant_for(user)
    out = authorize_vstream(req, topology(), user, grant)
    assert out.vgtid is not None
    return [entry.keyspace for entry in out.vgtid.shard_gtids]


def test_file_parses_into_grants() -> None:
    policy = parse_access_file(ACCESS)
    debezium = policy.grant_for("debezium")
    assert debezium.may_read("commerce") and not debezium.may_read("internal")
    assert debezium.may_read_table("customer", "corder")
    assert not debezium.may_read_table("customer", "secrets")
    assert debezium.may_read_table("commerce", "anything")
    assert debezium.metadata
    ops = policy.grant_for("ops")
    assert ops.may_read("internal") and not ops.metadata
    stranger = policy.grant_for("stranger")
    assert not stranger.listed and not stranger.may_read("commerce") and not stranger.metadata


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[users", "not TOML"),
        ("", "no [users.NAME]"),
        ("[groups.a]", "unknown top-level key"),
        ("[users.a]\nkeyspace = ['x']", "unknown key 'keyspace'"),
        ("[users.a]\nkeyspaces = 'x'", "keyspaces must be a list"),
        ("[users.a]\nkeyspaces = ['x']\n[users.a.tables]\ny = ['t']", "not in its keyspaces"),
        ("[users.a]\nkeyspaces = ['x']\nmetadata = 'yes'", "true or false"),
    ],
)
def test_bad_access_files_say_what(text: str, words: str) -> None:
    with pytest.raises(AccessFileError, match=words.replace("[", r"\[")):
        parse_access_file(text)


def test_allowed_keyspaces_pass_unchanged() -> None:
    req = request("commerce")
    grant = parse_access_file(ACCESS).grant_for("debezium")
    assert authorize_vstream(req, topology(), "debezium", grant) is req


def test_a_keyspace_not_granted_is_denied_by_name_existing_or_not() -> None:
    assert denied(request("commerce", "internal")) == (
        "user 'debezium' may not stream keyspace 'internal'"
    )
    assert "keyspace 'nosuch'" in denied(request("nosuch"))


def test_regex_and_every_keyspace_narrow_to_allowed_ones() -> None:
    assert allowed(request("/.*"), "reader") == ["commerce", "customer"]
    assert allowed(request("/^c"), "reader") == ["commerce", "customer"]
    assert allowed(request("/comm"), "reader") == ["commerce"]
    assert allowed(request(""), "reader") == ["commerce", "customer"]
    assert allowed(request("/.*"), "ops") == ["commerce", "customer", "internal"]
    message = denied(request("/intern"), "reader")
    assert message == "user 'reader' may stream no keyspace selected by '/intern'"
    # The same answer when nothing matches at all: what exists is not told.
    assert "no keyspace selected" in denied(request("/nosuch"), "reader")


def test_narrowing_keeps_the_clients_message_and_the_other_fields() -> None:
    req = request("/.*", gtid="current")
    req.flags = vtgate.VStreamFlags(heartbeat_interval=5)
    grant = parse_access_file(ACCESS).grant_for("reader")
    out = authorize_vstream(req, topology(), "reader", grant)
    assert req.vgtid is not None and [e.keyspace for e in req.vgtid.shard_gtids] == ["/.*"]
    assert out.flags is not None and out.flags.heartbeat_interval == 5


def test_a_bad_selector_is_refused_as_the_resolver_would() -> None:
    grant = parse_access_file(ACCESS).grant_for("debezium")
    with pytest.raises(VStreamError) as info:
        authorize_vstream(request("/("), topology(), "debezium", grant)
    assert info.value.code == Code.INVALID_ARGUMENT


def test_table_limited_keyspace_needs_allowed_table_rules() -> None:
    ok = request("customer", rules=[("customer", "select * from customer"), ("corder", "")])
    assert allowed(ok) == ["customer"]
    message = denied(request("customer", rules=[("secrets", "select * from secrets")]))
    assert message == "user 'debezium' may not stream table 'secrets' of keyspace 'customer'"
    message = denied(request("customer", rules=[("/.*", "")]))
    assert "only some tables of keyspace 'customer' (corder, customer)" in message
    assert "'/.*'" in denied(request("customer"))  # no filter means /.*
    # A filter is shared by every keyspace of the request.
    assert "keyspace 'customer'" in denied(request("/.*", rules=[("product", "")]))
    # exclude only takes away
    assert allowed(request("customer", rules=[("secrets", "exclude"), ("corder", "")])) == [
        "customer"
    ]


def test_unlisted_user_streams_nothing_and_full_access_everything() -> None:
    assert "no entry in the gateway's access file" in denied(request("commerce"), "stranger")
    req = request("internal")
    assert authorize_vstream(req, topology(), "anyone", FULL_ACCESS) is req


def test_a_granted_keyspace_missing_from_the_topology_lists_only_readable_ones() -> None:
    # The access file may name a keyspace the topology lacks; the answer must
    # not list keyspaces the user may not read (as the resolver's would).
    access = '[users.debezium]\nkeyspaces = ["commerce", "gone"]\n'
    grant = parse_access_file(access).grant_for("debezium")
    with pytest.raises(VStreamError) as info:
        authorize_vstream(request("gone"), topology(), "debezium", grant)
    assert info.value.code == Code.NOT_FOUND
    assert info.value.message.endswith("may stream: commerce")
    assert "internal" not in info.value.message
