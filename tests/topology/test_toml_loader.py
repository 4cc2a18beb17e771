"""The topology TOML loader: a good file, and a clear error for each bad one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vsmux.proto.topodata import TabletType
from vsmux.topology import TabletInfo, TabletList, Topology, TopologyError, load_topology

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


def _many_tablets(shard_count: int, per_shard: int) -> str:
    """A one-keyspace topology with ``shard_count`` shards of ``per_shard`` tablets."""
    bounds = [f"{(i * 65536) // shard_count:04x}" for i in range(1, shard_count)]
    shards = [f"{lo}-{hi}" for lo, hi in zip(["", *bounds], [*bounds, ""], strict=True)]
    out = ['cell = "zone1"', "[keyspaces.big]", f"shards = {json.dumps(shards)}", ""]
    uid = 0
    for shard in shards:
        for n in range(per_shard):
            uid += 1
            kind = ("primary", "replica", "rdonly")[min(n, 2)]
            out += ["[[tablets]]", 'keyspace = "big"', f'shard = "{shard}"', f'type = "{kind}"']
            out += [f"uid = {uid}", f'address = "10.0.{uid // 250 % 250}.{uid % 250}:15000"', ""]
    return "\n".join(out)


def test_eight_thousand_tablets_load_in_linear_time() -> None:
    # Locating each tablet's line by rescanning the text, and checking each
    # serving shard against every tablet, made this take 31 s (2k: 2.7 s).
    # Now it is one tomllib pass plus one pass of checks: 0.3-0.9 s. CPU time,
    # so a machine busy with other work does not fail it; the bound is loose.
    text = _many_tablets(2000, 4)
    started = time.process_time()
    topology = load_topology(text)
    elapsed = time.process_time() - started
    assert len(topology.tablets) == 8000
    assert elapsed < 2.0, f"8000 tablets took {elapsed:.2f} s of CPU"
    shard = topology.serving_shards("big")[1234]
    assert [t.uid for t in topology.tablets_for("big", shard)] == [4937, 4938, 4939, 4940]


def test_error_far_into_a_big_file_names_its_line() -> None:
    text = _many_tablets(500, 4)
    lines = text.splitlines()
    header = [n for n, line in enumerate(lines, start=1) if line == "[[tablets]]"][1500]
    assert lines[header + 2].startswith("type = ")
    lines[header + 2] = 'type = "master-ish"'
    with pytest.raises(TopologyError, match=rf":{header}: tablets\[1500\]\.type: bad type"):
        load_topology("\n".join(lines))


def test_tablet_index_follows_every_change_to_the_list() -> None:
    a, b, c = (TabletInfo("ks", "0", "zone1", uid, TabletType.PRIMARY) for uid in (1, 2, 3))
    other = TabletInfo("ks", "-80", "zone1", 4, TabletType.PRIMARY)
    topology = Topology(cell="zone1", tablets=[a, other])
    assert isinstance(topology.tablets, TabletList)
    assert topology.tablets_for("ks", "0") == [a]
    topology.tablets.append(b)
    assert topology.tablets_for("ks", "0") == [a, b]
    topology.tablets[:] = [c, other]
    assert topology.tablets_for("ks", "0") == [c]
    topology.tablets += [a]
    assert topology.tablets_for("ks", "0") == [c, a]
    del topology.tablets[0]
    assert topology.tablets_for("ks", "0") == [a]
    topology.tablets.remove(other)
    assert not topology.has_shard("ks", "-80")
    topology.tablets = [b]  # a plain list assigned later is wrapped on next use
    assert topology.tablets_for("ks", "0") == [b]
    assert topology.tablets_for("ks", "0") is not topology.tablets_for("ks", "0")


def test_table_lists_come_with_the_topology_and_survive_a_dump() -> None:
    from vsmux.topology import dump_topology

    topology = load_topology(GOOD)
    # A keyspace without ``tables`` has no list (SHOW TABLES asks elsewhere).
    assert topology.table_lists() == {"commerce": ["customer", "corder"]}
    again = load_topology(dump_topology(topology))
    assert again.table_lists() == topology.table_lists()
    assert again.keyspaces["lookup"].tables is None


def test_a_failover_buffer_table_becomes_settings_and_survives_a_dump() -> None:
    from vsmux.topology import dump_topology

    text = GOOD.replace(
        "[[tablets]]",
        "[failover_buffer]\nenabled = true\nwindow = 5\nmax_duration = 30.5\ndry_run = true\n\n"
        "[[tablets]]",
        1,
    )
    topology = load_topology(text)
    assert topology.failover_buffer == {
        "failover_buffer_enabled": True,
        "failover_window": 5.0,
        "failover_max_duration": 30.5,
        "failover_dry_run": True,
    }
    assert load_topology(dump_topology(topology)).failover_buffer == topology.failover_buffer
    assert load_topology(GOOD).failover_buffer == {}


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("window = 0", "failover_buffer.window: must be a number of seconds above 0"),
        ('enabled = "yes"', "failover_buffer.enabled: must be true or false"),
        ("windoww = 3", "failover_buffer.windoww: unknown key"),
    ],
)
def test_a_bad_failover_buffer_table_says_which_key(table: str, words: str) -> None:
    text = GOOD.replace("[[tablets]]", f"[failover_buffer]\n{table}\n\n[[tablets]]", 1)
    with pytest.raises(TopologyError) as info:
        load_topology(text)
    assert words in str(info.value)


def test_a_keyspace_may_turn_sharing_off_and_keeps_it_through_a_dump() -> None:
    from vsmux.topology import dump_topology

    text = GOOD.replace('shards = ["0"]', 'shards = ["0"]\nshare = false', 1)
    topology = load_topology(text)
    assert topology.keyspaces["lookup"].share is False
    assert topology.keyspaces["commerce"].share is True
    assert load_topology(dump_topology(topology)).keyspaces["lookup"].share is False


def test_share_must_be_a_boolean() -> None:
    text = GOOD.replace('shards = ["0"]', 'shards = ["0"]\nshare = "no"', 1)
    with pytest.raises(TopologyError) as info:
        load_topology(text)
    assert "keyspaces.lookup.share: must be true or false" in str(info.value)


def test_cells_aliases_load_and_survive_a_dump() -> None:
    from vsmux.topology import dump_topology

    text = GOOD + '\n[cells_aliases]\nregion1 = ["zone1", "zone2"]\n"west-2" = ["zone7"]\n'
    topology = load_topology(text)
    assert topology.cells_aliases == {"region1": ["zone1", "zone2"], "west-2": ["zone7"]}
    assert load_topology(dump_topology(topology)).cells_aliases == topology.cells_aliases
    assert load_topology(GOOD).cells_aliases == {}


@pytest.mark.parametrize(
    ("table", "words"),
    [
        pytest.param(
            'region1 = ["zone1"]\nregion2 = ["zone3", "zone1"]',
            ":32: cells_aliases.region2: cell 'zone1' is already in alias 'region1'; "
            "a cell may belong to one alias only",
            id="cell-in-two-aliases",
        ),
        pytest.param(
            'region1 = ["zone1", "zone1"]',
            ":31: cells_aliases.region1: lists cell 'zone1' twice",
            id="cell-twice",
        ),
        pytest.param(
            "region1 = []",
            "cells_aliases.region1: must be a non-empty list of cell names",
            id="empty",
        ),
        pytest.param(
            'region1 = "zone1"',
            "cells_aliases.region1: must be a non-empty list of cell names",
            id="not-a-list",
        ),
        pytest.param(
            'region1 = ["zone1", 2]',
            "cells_aliases.region1: must be a non-empty list of cell names",
            id="not-names",
        ),
        pytest.param(
            'zone2 = ["zone3"]',
            ":31: cells_aliases.zone2: 'zone2' is also the name of a cell; "
            "give the alias a name of its own",
            id="named-like-a-tablet-cell",
        ),
        pytest.param(
            'region1 = ["zone3", "region2"]\nregion2 = ["zone4"]',
            ":32: cells_aliases.region2: 'region2' is also the name of a cell",
            id="named-like-an-aliased-cell",
        ),
        pytest.param(
            '"" = ["zone3"]', "cells_aliases.: an alias needs a non-empty name", id="no-name"
        ),
    ],
)
def test_bad_cells_aliases_say_what_is_wrong(table: str, words: str) -> None:
    text = GOOD + f"\n[cells_aliases]\n{table}\n"
    with pytest.raises(TopologyError) as info:
        load_topology(text)
    assert words in str(info.value)


def test_cells_aliases_must_be_a_table() -> None:
    text = 'cells_aliases = ["zone1"]\n' + GOOD
    with pytest.raises(TopologyError) as info:
        load_topology(text)
    assert ":1: cells_aliases: must be a table: [cells_aliases] with lines like" in str(info.value)
