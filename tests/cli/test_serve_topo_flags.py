"""``vsmux serve``'s vtgate topology flags reach ServeConfig; wrong combinations are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vsmux.cli.main import main
from vsmux.server import standalone
from vsmux.server.etcd_topology import EtcdTopoConfig


def config_for(monkeypatch: pytest.MonkeyPatch, *flags: str) -> Any:
    seen: list[Any] = []

    async def fake_serve(config: Any, **_: Any) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(standalone, "serve_until_signal", fake_serve)
    assert main(["serve", *flags]) == 0
    return seen[0]


@pytest.mark.parametrize("sep", ["-", "_"])
def test_vtgates_flags_in_either_spelling(monkeypatch: pytest.MonkeyPatch, sep: str) -> None:
    config = config_for(
        monkeypatch,
        f"--topo{sep}implementation",
        "etcd2",
        f"--topo{sep}global{sep}server{sep}address",
        "127.0.0.1:2379",
        f"--topo{sep}global{sep}root",
        "/vt/global",
        "--cell",
        "zone2",
    )
    assert config.etcd == EtcdTopoConfig("127.0.0.1:2379", "/vt/global", "zone2")
    assert config.topology.cell == "zone2"
    assert config.topology.keyspaces == {}
    assert config.settings.cell == "zone2"


def test_the_global_root_defaults_to_vitess_global(monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_for(
        monkeypatch,
        "--topo-implementation=etcd2",
        "--topo-global-server-address=etcd:2379",
        "--cell=zone1",
    )
    assert config.etcd.global_root == "/vitess/global"


@pytest.mark.parametrize("option", ["--cells-to-watch", "--cells_to_watch"])
def test_cells_to_watch_in_either_spelling(monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    config = config_for(
        monkeypatch,
        "--topo-implementation=etcd2",
        "--topo-global-server-address=etcd:2379",
        "--cell=zone1",
        option,
        " zone1,zone2,,zone3,zone2",
    )
    assert config.etcd.cells_to_watch == ("zone1", "zone2", "zone3")
    assert config.etcd.other_cells() == ["zone2", "zone3"]


def test_without_cells_to_watch_only_the_own_cell_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = config_for(
        monkeypatch,
        "--topo-implementation=etcd2",
        "--topo-global-server-address=etcd:2379",
        "--cell=zone1",
    )
    assert config.etcd.cells_to_watch == ()
    assert config.etcd.other_cells() == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "expected one or more cell names"),
        (",,", "expected one or more cell names"),
        ("zone1,a/b", "'a/b' is not a cell name"),
        ("zone1,a b", "'a b' is not a cell name"),
    ],
)
def test_bad_cells_to_watch_are_refused(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "serve",
                "--topo-implementation=etcd2",
                "--topo-global-server-address=etcd:2379",
                "--cell=zone1",
                f"--cells-to-watch={value}",
            ]
        )
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--cells-to-watch" in err and message in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "give --topology FILE, or --topo-implementation etcd2"),
        (["--topo-implementation", "zk2", "--cell", "z"], "'zk2' is not supported: only etcd2"),
        (["--topo-implementation", "etcd2", "--cell", "z"], "needs --topo-global-server-address"),
        (
            ["--topo-implementation", "etcd2", "--topo-global-server-address", "e:1"],
            "needs --cell",
        ),
        (
            ["--topology", "t.toml", "--topo-global-server-address", "e:1", "--cell", "z"],
            "either --topology or the --topo-* flags, not both",
        ),
        (
            ["--topology", "t.toml", "--cells-to-watch", "zone2"],
            "--cells-to-watch is for --topo-implementation etcd2",
        ),
    ],
)
def test_wrong_combinations_are_refused(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve", *flags]) == 2
    assert message in capsys.readouterr().err
