"""Request limits: each one names the field, its size, the limit and the option."""

from __future__ import annotations

import pytest

from vsmux.core.limits import OPTIONS, check_vstream_request
from vsmux.core.settings import GatewaySettings
from vsmux.errors import Code, VStreamError
from vsmux.proto import binlogdata, vtgate

SETTINGS = GatewaySettings()


def request(
    *shard_gtids: binlogdata.ShardGtid,
    rules: list[binlogdata.Rule] | None = None,
    tables_to_copy: list[str] | None = None,
) -> vtgate.VStreamRequest:
    return vtgate.VStreamRequest(
        vgtid=binlogdata.VGtid(shard_gtids=list(shard_gtids)),
        filter=binlogdata.Filter(rules=rules) if rules is not None else None,
        flags=vtgate.VStreamFlags(tables_to_copy=tables_to_copy or []),
    )


def sg(
    keyspace: str = "commerce", shard: str = "-80", gtid: str = "current"
) -> binlogdata.ShardGtid:
    return binlogdata.ShardGtid(keyspace=keyspace, shard=shard, gtid=gtid)


def refused(req: vtgate.VStreamRequest, settings: GatewaySettings = SETTINGS) -> str:
    with pytest.raises(VStreamError) as info:
        check_vstream_request(req, settings)
    assert info.value.code == Code.INVALID_ARGUMENT
    return info.value.message


def test_a_usual_request_passes() -> None:
    check_vstream_request(
        request(
            sg(gtid="MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"),
            sg(keyspace="/comm.*", shard=""),
            rules=[binlogdata.Rule(match="customer", filter="select * from customer")],
        ),
        SETTINGS,
    )
    check_vstream_request(vtgate.VStreamRequest(), SETTINGS)


def test_every_limit_has_a_serve_option() -> None:
    assert len(OPTIONS) == 9
    for name, option in OPTIONS.items():
        assert getattr(GatewaySettings(), name) > 0
        assert option == "--" + name.replace("_", "-")


def test_keyspace_name_over_the_limit_names_field_size_limit_and_option() -> None:
    message = refused(request(sg(), sg(keyspace="k" * 1_000_000)))
    assert message.startswith(
        "vgtid.shard_gtids[1].keyspace is 1000000 bytes long, over the limit of 64 bytes "
        "(vsmux serve --max-name-bytes): 'kkkk"
    )
    assert message.endswith("'... (1000000 characters)")
    assert len(message) < 300


def test_sizes_are_utf8_bytes() -> None:
    check_vstream_request(request(sg(keyspace="é" * 32)), SETTINGS)
    assert "is 66 bytes long" in refused(request(sg(keyspace="é" * 33)))


def test_a_regex_selector_has_the_pattern_limit() -> None:
    check_vstream_request(request(sg(keyspace="/" + "a" * 200, shard="")), SETTINGS)
    message = refused(request(sg(keyspace="/" + "a" * 300, shard="")))
    assert "vgtid.shard_gtids[0].keyspace is 301 bytes long" in message
    assert "--max-pattern-bytes" in message


@pytest.mark.parametrize(
    ("req", "field", "option"),
    [
        (request(sg(shard="s" * 100_000)), "vgtid.shard_gtids[0].shard", "--max-shard-name-bytes"),
        (request(sg(gtid="M" * 70_000)), "vgtid.shard_gtids[0].gtid", "--max-gtid-bytes"),
        (
            request(
                binlogdata.ShardGtid(
                    keyspace="commerce",
                    shard="-80",
                    gtid="x",
                    table_p_ks=[binlogdata.TableLastPk(table_name="t" * 65)],
                )
            ),
            "vgtid.shard_gtids[0].table_p_ks[0].table_name",
            "--max-name-bytes",
        ),
        (
            request(sg(), rules=[binlogdata.Rule(match="c" * 65)]),
            "filter.rules[0].match",
            "--max-name-bytes",
        ),
        (
            request(sg(), rules=[binlogdata.Rule(match="/" + "c" * 256)]),
            "filter.rules[0].match",
            "--max-pattern-bytes",
        ),
        (
            request(sg(), rules=[binlogdata.Rule(match="c", filter="s" * 1_000_000)]),
            "filter.rules[0].filter",
            "--max-filter-sql-bytes",
        ),
        (request(sg(), tables_to_copy=["t" * 65]), "flags.tables_to_copy[0]", "--max-name-bytes"),
    ],
)
def test_each_string_limit(req: vtgate.VStreamRequest, field: str, option: str) -> None:
    message = refused(req)
    assert message.startswith(f"{field} is ")
    assert f"(vsmux serve {option})" in message
    assert len(message) < 300


def test_counts_have_limits_too() -> None:
    many = request(*(sg(shard=f"s{i}") for i in range(1025)))
    assert refused(many).startswith(
        "vgtid.shard_gtids has 1025 entries, over the limit of 1024 (vsmux serve --max-shard-gtids)"
    )
    rules = [binlogdata.Rule(match=f"t{i}") for i in range(4097)]
    assert refused(request(sg(), rules=rules)).startswith(
        "filter.rules has 4097 entries, over the limit of 4096 (vsmux serve --max-filter-rules)"
    )


def test_limits_come_from_the_settings() -> None:
    tight = GatewaySettings(max_name_bytes=4, max_shard_gtids=1)
    assert "over the limit of 4 bytes" in refused(request(sg(keyspace="commerce")), tight)
    assert "over the limit of 1 " in refused(request(sg(keyspace="a"), sg(keyspace="b")), tight)
    roomy = GatewaySettings(max_name_bytes=2_000_000)
    check_vstream_request(request(sg(keyspace="k" * 1_000_000)), roomy)
