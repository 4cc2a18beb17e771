import pytest

from vsmux.cli.args import attach_shard_values
from vsmux.cli.main import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["cluster", "--shards", "-80,80-"], ["cluster", "--shards=-80,80-"]),
        (
            ["tail", "--shard", "-c0", "--keyspace", "ks"],
            ["tail", "--shard=-c0", "--keyspace", "ks"],
        ),
        (["tail", "--shard", "80-"], ["tail", "--shard", "80-"]),  # no dash: left as is
        (["tail", "--shard", "--keyspace"], ["tail", "--shard", "--keyspace"]),  # not a shard
        (["x", "--", "--shard", "-80"], ["x", "--", "--shard", "-80"]),
    ],
)
def test_shard_values_starting_with_a_dash_are_attached(
    argv: list[str], expected: list[str]
) -> None:
    assert attach_shard_values(argv) == expected


def test_shard_lists_parse_for_every_subcommand_that_takes_them() -> None:
    parser = build_parser()
    cluster = parser.parse_args(
        attach_shard_values(["cluster", "--topology-out", "t.toml", "--shards", "-40,40-80,80-"])
    )
    assert cluster.shards == ["-40,40-80,80-"]
    tablet = parser.parse_args(attach_shard_values(["fake-tablet", "--shard", "-c0"]))
    assert tablet.shard == "-c0"
    tail = parser.parse_args(attach_shard_values(["tail", "--keyspace", "ks", "--shard", "-c0"]))
    assert tail.shard == "-c0"


@pytest.mark.parametrize(
    "value",
    ["-", "-80", "-80,80-", "-40,40-80,80-c0,c0-", "-,80-", "-aF,0"],
)
def test_shard_lists_of_every_form_are_attached(value: str) -> None:
    assert attach_shard_values(["tail", "--shard", value]) == ["tail", f"--shard={value}"]


@pytest.mark.parametrize(
    "value",
    [
        "-8-0",  # the first name has its one "-" already
        "-80,8-0-",  # two in a later name
        "-80,,x",
        "-,aaaaaaaaaa," + ",".join(["aaaaaaaaaa"] * 200) + "x",  # a long near miss
    ],
)
def test_values_that_are_not_shard_lists_are_left_alone(value: str) -> None:
    assert attach_shard_values(["tail", "--shard", value]) == ["tail", "--shard", value]
