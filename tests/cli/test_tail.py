"""``vsmux tail`` options: parsing into the tail configuration, and early exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsmux.cli.main import build_parser, main
from vsmux.cli.tail import _config
from vsmux.client.request import StreamOptions


def config_for(*argv: str):  # type: ignore[no-untyped-def]
    return _config(build_parser().parse_args(["tail", *argv]))


def test_defaults() -> None:
    config = config_for("--keyspace", "commerce")
    assert config.stream == StreamOptions(keyspace="commerce")
    assert config.format == "json" and config.client_id == "vsmux-tail"
    assert not config.start_given and not config.quiet
    assert config.max_events is None and config.max_seconds is None
    assert not config.transaction_metadata


def test_transaction_metadata_flag() -> None:
    config = config_for("--keyspace", "ks", "--format", "debezium", "--transaction-metadata")
    assert config.format == "debezium" and config.transaction_metadata


def test_every_option() -> None:
    config = config_for(
        "--server",
        "gw:1",
        "--keyspace",
        "commerce",
        "--shard",
        "-80",
        "--tables",
        " customer, corder ,",
        "--tablet-type",
        "replica",
        "--from",
        "copy",
        "--format",
        "maxwell",
        "--client-id",
        "feed",
        "--heartbeat",
        "5",
        "--stop-on-reshard",
        "--quiet",
        "--max-events",
        "10",
        "--max-seconds",
        "2.5",
    )
    assert config.stream == StreamOptions(
        keyspace="commerce",
        shard="-80",
        tables=("customer", "corder"),
        tablet_type="replica",
        start="copy",
        heartbeat=5,
        stop_on_reshard=True,
    )
    assert (config.format, config.client_id, config.start_given, config.quiet) == (
        "maxwell",
        "feed",
        True,
        True,
    )
    assert (config.max_events, config.max_seconds) == (10, 2.5)


def test_tables_and_filter_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config_for("--keyspace", "k", "--tables", "a", "--filter", "/.*")
    assert "not allowed with argument" in capsys.readouterr().err


def test_unusable_checkpoint_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir" / "cp.db"
    assert main(["tail", "--keyspace", "k", "--checkpoint", str(missing)]) == 2
    assert "cannot open checkpoint file" in capsys.readouterr().err


def test_bad_from_exits_2_without_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 would refuse; the option error comes first.
    assert main(["tail", "--keyspace", "k", "--server", "127.0.0.1:1", "--from", "x"]) == 2
    assert "--from must be 'current', 'copy'" in capsys.readouterr().err
