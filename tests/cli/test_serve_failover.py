"""``vsmux serve``'s failover buffer options reach GatewaySettings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vsmux.cli.main import main
from vsmux.core.settings import GatewaySettings
from vsmux.server import standalone

TOPOLOGY = (
    'cell = "zone1"\n[keyspaces.ks]\nshards = ["0"]\n'
    '[[tablets]]\nkeyspace = "ks"\nshard = "0"\nuid = 1\nsimulated = true\n'
)


def settings_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *flags: str, text: str = TOPOLOGY
) -> GatewaySettings:
    topology = tmp_path / "t.toml"
    topology.write_text(text)
    seen: list[Any] = []

    async def fake_serve(config: Any, **_: Any) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(standalone, "serve_until_signal", fake_serve)
    assert main(["serve", "--topology", str(topology), *flags]) == 0
    settings: GatewaySettings = seen[0].settings
    return settings


def test_defaults_are_on_with_vtgates_durations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path, monkeypatch)
    assert settings.failover_buffer_enabled
    assert (
        settings.failover_window,
        settings.failover_max_duration,
        settings.failover_min_time_between,
        settings.failover_dry_run,
    ) == (10.0, 20.0, 60.0, False)


def test_every_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(
        tmp_path,
        monkeypatch,
        "--no-failover-buffer",
        "--failover-window",
        "5",
        "--failover-max-duration",
        "30",
        "--failover-min-time-between",
        "120",
        "--failover-dry-run",
    )
    assert not settings.failover_buffer_enabled
    assert (
        settings.failover_window,
        settings.failover_max_duration,
        settings.failover_min_time_between,
        settings.failover_dry_run,
    ) == (5.0, 30.0, 120.0, True)


def test_durations_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--topology", str(tmp_path / "t.toml"), "--failover-window", "0"])
    assert "--failover-window" in capsys.readouterr().err


def test_the_topology_file_sets_them_and_flags_given_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = TOPOLOGY + "[failover_buffer]\nwindow = 3\nmax_duration = 40\ndry_run = true\n"
    from_file = settings_for(tmp_path, monkeypatch, text=text)
    assert (
        from_file.failover_window,
        from_file.failover_max_duration,
        from_file.failover_dry_run,
        from_file.failover_min_time_between,  # not in the file: the default
    ) == (3.0, 40.0, True, 60.0)
    overridden = settings_for(tmp_path, monkeypatch, "--failover-window", "7", text=text)
    assert (overridden.failover_window, overridden.failover_max_duration) == (7.0, 40.0)
