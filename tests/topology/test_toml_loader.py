"""The topology TOML loader: a good file, and a clear error for each bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsmux.proto.topodata import TabletType
from vsmux.topology import TopologyError, load_topology

GOOD = """\
cell = "zone1"                       # the gateway's own cell
[keyspaces.commerce]
shards = ["-80", "80-"]
tables = ["customer", "corder"]
[keyspaces.lookup]
shards = ["0"]

[[tablets]]
keyspace = "commerce"
shard = "-80"
cell = "zone1"
type = "primary"
uid = 101
address = "127.0.0.1:15101"

[[tablets]]
keyspace = "commerce"
shard = "80-"
type = "replica"
cell = "zone2"
uid = 102
address = "localhost:15102"

[[tablets]]
keyspace = "lookup"
shard = "0"
uid = 201
simulated = true
"""


def test_good_file_from_path_and_text(tmp_path: Path) -> None:
    path = tmp_path / "topo.toml"
    path.write_text(GOOD)
    for source in (path, str(path), GOOD):
        topology = load_topology(source)
        assert topology.cell == "zone1"
        assert topology.serving_shards("commerce") == ["-80", "80-"]
        assert topology.serving_shards("lookup") == ["0"]
        first, second, third = topology.tablets
        assert (first.alias, first.tablet_type, first.address) == (
            "zone1-0000000101",
            TabletType.PRIMARY,
            "127.0.0.1:15101",
        )
        assert (second.cell, second.tablet_type) == ("zone2", TabletType.REPLICA)
        assert (third.cell, third.tablet_type, third.address) == ("zone1", TabletType.PRIMARY, None)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("uid = 102", "uid = 101"), r":16: tablets\[1\]\.uid: duplicate uid 101"),
        (('shards = ["-80", "80-"]', 'shards = ["-80", "70-"]'), r":3: .*overlaps"),
        (('shards = ["-80", "80-"]', 'shards = ["-80", "90-"]'), r":3: .*gap"),
        (('shards = ["-80", "80-"]', 'shards = ["-80"]'), r"gap after '80'"),
        (
            ('shards = ["-80", "80-"]', 'shards = ["-80", "80-c0", "c0-"]'),
            r":3: .*'80-c0' is listed but has no \[\[tablets\]\]",
        ),
        (('type = "replica"', 'type = "master-ish"'), r":16: tablets\[1\]\.type: bad type"),
        (('type = "replica"', 'typo = "replica"'), r":16: tablets\[1\]\.typo: unknown key"),
        (
            ('tables = ["customer", "corder"]', 'tabels = ["customer"]'),
            r"keyspaces\.commerce\.tabels: unknown key",
        ),
        (('cell = "zone1"                       #', 'cels = "zone1"  #'), r"'cels': unknown key"),
        (
            ("simulated = true", 'address = "nohost"'),
            r"tablets\[2\]\.address: 'nohost' is not host:port",
        ),
        (("simulated = true", "simulated = false"), r"exactly one of address"),
        (('keyspace = "lookup"', 'keyspace = "nosuch"'), r"unknown keyspace 'nosuch'"),
        (("uid = 201", 'uid = "201"'), r"uid: missing or not a positive integer"),
        (('shard = "0"', 'shard = "xyz"'), r"tablets\[2\]\.shard: .*not a key range"),
        (('[[tablets]]\nkeyspace = "lookup"', '[tablets]\nkeyspace = "lookup"'), r"not valid TOML"),
    ],
)
def test_bad_files_name_the_key_and_problem(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(TopologyError, match=expected):
        load_topology(GOOD.replace(old, new, 1))


def test_keyspace_cannot_mix_simulated_and_real_tablets() -> None:
    text = GOOD.replace('address = "localhost:15102"', "simulated = true")
    with pytest.raises(TopologyError, match=r"keyspaces\.commerce: mixes simulated"):
        load_topology(text)


def test_missing_file_is_a_topology_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read topology file"):
        load_topology(tmp_path / "absent.toml")
    assert issubclass(TopologyError, ValueError)
