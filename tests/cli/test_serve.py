"""``vsmux serve`` argument handling (the running server is covered in tests/e2e)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from vsmux.cli.args import parse_hostport
from vsmux.cli.main import main


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:15991") == ("127.0.0.1", 15991)
    assert parse_hostport(":9102") == ("127.0.0.1", 9102)
    assert parse_hostport("[::1]:80") == ("::1", 80)
    for bad in ("15991", "host:", "host:port"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_hostport(bad)


def test_unreadable_topology_is_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["serve", "--topology", str(missing)]) == 2
    assert f"cannot load {missing}" in capsys.readouterr().err


def test_invalid_topology_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('cell = "zone1"\n[keyspaces.commerce]\nshards = ["-80"]\n')
    assert main(["serve", "--topology", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot load" in err and "commerce" in err


def test_tiny_response_limit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topology = tmp_path / "t.toml"
    topology.write_text(
        'cell = "zone1"\n[keyspaces.ks]\nshards = ["0"]\n'
        '[[tablets]]\nkeyspace = "ks"\nshard = "0"\nuid = 1\nsimulated = true\n'
    )
    assert main(["serve", "--topology", str(topology), "--max-response-bytes", "10"]) == 2
    assert "--max-response-bytes" in capsys.readouterr().err


def test_request_limits_are_options() -> None:
    from vsmux.cli.serve import add_arguments
    from vsmux.core.limits import OPTIONS

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--topology", "t.toml"])
    assert all(getattr(args, field) is None for field in OPTIONS)  # the settings' defaults
    args = parser.parse_args(
        ["--topology", "t.toml", "--max-name-bytes", "128", "--max-request-bytes", "1048576"]
    )
    assert args.max_name_bytes == 128
    assert args.max_request_bytes == 1048576
    help_text = parser.format_help()
    for option in OPTIONS.values():
        assert option in help_text


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_request_limits_must_be_positive_whole_numbers(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from vsmux.cli.serve import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--topology", "t.toml", "--max-gtid-bytes", value])
    assert "--max-gtid-bytes" in capsys.readouterr().err
