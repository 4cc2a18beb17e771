"""Load the gateway's topology from a TOML file.

The format (documented in the README, section "Topology file")::

    cell = "zone1"
    [keyspaces.commerce]
    shards = ["-80", "80-"]        # serving shards, in order
    tables = ["customer"]          # optional: names for SHOW TABLES
    [[tablets]]
    keyspace = "commerce"
    shard = "-80"
    cell = "zone1"                 # optional, defaults to the top-level cell
    type = "primary"               # primary | replica | rdonly
    uid = 101
    address = "127.0.0.1:15101"    # or: simulated = true

Everything is checked before a :class:`Topology` is returned; the first
problem raises :class:`TopologyError` naming the line (where it can be found)
and key, and saying what is wrong.
"""

from __future__ import annotations

import re
import tomllib
from os import PathLike
from pathlib import Path
from typing import Any

from vsmux.proto.topodata import TabletType
from vsmux.topology.model import KeyRange, KeyspaceInfo, TabletInfo, Topology

__all__ = [
    "TopologyError",
    "dump_topology",
    "load_topology",
    "parse_topology",
    "partition_problem",
]

_TOP_KEYS = {"cell", "keyspaces", "tablets"}
_KEYSPACE_KEYS = {"shards", "tables"}
_TABLET_KEYS = {"keyspace", "shard", "cell", "type", "uid", "address", "simulated"}
_TYPES = {"primary": TabletType.PRIMARY, "replica": TabletType.REPLICA, "rdonly": TabletType.RDONLY}
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class TopologyError(ValueError):
    """A topology file that cannot be used, and why."""


def load_topology(source: str | PathLike[str]) -> Topology:
    """Load a topology from a path, or from TOML text when given a ``str`` holding TOML.

    A ``str`` is read as a path if a file by that name exists or it has no
    newline and no ``=``; otherwise it is parsed as TOML text.
    """
    if isinstance(source, str) and ("\n" in source or ("=" in source and not _is_file(source))):
        return parse_topology(source, origin="<text>")
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {path}: {exc.strerror or exc}") from None
    return parse_topology(text, origin=str(path))


def _is_file(name: str) -> bool:
    try:
        return Path(name).is_file()
    except OSError:
        return False


def parse_topology(text: str, origin: str = "<text>") -> Topology:
    """Parse and check topology TOML ``text``; ``origin`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{origin}: not valid TOML: {exc}") from None
    return _Checker(text, origin).build(raw)


class _Checker:
    def __init__(self, text: str, origin: str) -> None:
        self.lines = text.splitlines()
        self.origin = origin

    # -- locating lines ------------------------------------------------------

    def _line_of(self, pattern: str, occurrence: int = 0) -> int | None:
        regex = re.compile(pattern)
        seen = 0
        for number, line in enumerate(self.lines, start=1):
            if regex.search(line.split("#", 1)[0]):
                if seen == occurrence:
                    return number
                seen += 1
        return None

    def _fail(self, where: str, message: str, line: int | None = None) -> TopologyError:
        at = f"{self.origin}:{line}" if line else self.origin
        return TopologyError(f"{at}: {where}: {message}")

    def _key_line(self, key: str) -> int | None:
        return self._line_of(rf"^\s*{re.escape(key)}\s*=")

    def _keyspace_line(self, name: str) -> int | None:
        quoted = re.escape(name)
        return self._line_of(rf"^\s*\[\s*keyspaces\.(\"{quoted}\"|{quoted})\s*\]")

    def _keyspace_key_line(self, name: str, key: str) -> int | None:
        """The line of ``key = `` inside ``[keyspaces.<name>]`` (else the header's)."""
        header = self._keyspace_line(name)
        if header is None:
            return None
        regex = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(header + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if line.lstrip().startswith("["):
                break
            if regex.search(line):
                return number
        return header

    def _tablet_line(self, index: int) -> int | None:
        return self._line_of(r"^\s*\[\[\s*tablets\s*\]\]", index)

    # -- checks --------------------------------------------------------------

    def build(self, raw: dict[str, Any]) -> Topology:
        for key in raw:
            if key not in _TOP_KEYS:
                raise self._fail(
                    repr(key),
                    f"unknown key (expected one of {sorted(_TOP_KEYS)})",
                    self._key_line(key) or self._line_of(rf"^\s*\[+\s*{re.escape(key)}\b"),
                )
        cell = raw.get("cell")
        if not isinstance(cell, str) or not cell:
            raise self._fail("cell", "missing or not a non-empty string", self._key_line("cell"))
        keyspaces = raw.get("keyspaces")
        if not isinstance(keyspaces, dict) or not keyspaces:
            raise self._fail("keyspaces", "no keyspaces: add a [keyspaces.<name>] table")
        topology = Topology(cell=cell)
        for name, spec in keyspaces.items():
            topology.keyspaces[name] = self._keyspace(name, spec)
        tablets = raw.get("tablets", [])
        if not isinstance(tablets, list):
            raise self._fail("tablets", "must be an array of tables: use [[tablets]]")
        uids: dict[int, int] = {}
        for index, spec in enumerate(tablets):
            tablet = self._tablet(index, spec, topology, cell)
            first = uids.setdefault(tablet.uid, index)
            if first != index:
                raise self._fail(
                    f"tablets[{index}].uid",
                    f"duplicate uid {tablet.uid} (also used by tablets[{first}]); "
                    "every tablet needs its own uid",
                    self._tablet_line(index),
                )
            topology.tablets.append(tablet)
        for name, info in topology.keyspaces.items():
            for shard in info.shards:
                if not topology.has_shard(name, shard):
                    raise self._fail(
                        f"keyspaces.{name}.shards",
                        f"shard {shard!r} is listed but has no [[tablets]] entry",
                        self._keyspace_key_line(name, "shards"),
                    )
            kinds = {t.address is None for t in topology.tablets if t.keyspace == name}
            if len(kinds) > 1:
                raise self._fail(
                    f"keyspaces.{name}",
                    "mixes simulated tablets with addressed ones; a keyspace is either "
                    "simulated or real",
                    self._keyspace_line(name),
                )
        return topology

    def _keyspace(self, name: str, spec: Any) -> KeyspaceInfo:
        where = f"keyspaces.{name}"
        line = self._keyspace_line(name)
        if not isinstance(spec, dict):
            raise self._fail(where, "must be a table: [keyspaces.<name>] with shards = [...]", line)
        for key in spec:
            if key not in _KEYSPACE_KEYS:
                raise self._fail(
                    f"{where}.{key}",
                    f"unknown key (expected one of {sorted(_KEYSPACE_KEYS)})",
                    line,
                )
        line = self._keyspace_key_line(name, "shards")
        shards = spec.get("shards")
        if (
            not isinstance(shards, list)
            or not shards
            or not all(isinstance(s, str) and s for s in shards)
        ):
            raise self._fail(f"{where}.shards", "missing or not a list of shard names", line)
        if len(set(shards)) != len(shards):
            raise self._fail(f"{where}.shards", "lists a shard twice", line)
        problem = partition_problem(shards)
        if problem is not None:
            raise self._fail(f"{where}.shards", problem, line)
        tables = spec.get("tables", [])
        if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
            raise self._fail(f"{where}.tables", "must be a list of table names", line)
        return KeyspaceInfo(name, list(shards))

    def _tablet(self, index: int, spec: Any, topology: Topology, cell: str) -> TabletInfo:
        where = f"tablets[{index}]"
        line = self._tablet_line(index)
        if not isinstance(spec, dict):
            raise self._fail(where, "must be a table ([[tablets]])", line)
        for key in spec:
            if key not in _TABLET_KEYS:
                raise self._fail(
                    f"{where}.{key}", f"unknown key (expected one of {sorted(_TABLET_KEYS)})", line
                )

        def text(key: str, default: str | None = None) -> str:
            value = spec.get(key, default)
            if not isinstance(value, str) or not value:
                raise self._fail(f"{where}.{key}", "missing or not a non-empty string", line)
            return value

        keyspace = text("keyspace")
        if keyspace not in topology.keyspaces:
            raise self._fail(
                f"{where}.keyspace",
                f"unknown keyspace {keyspace!r}: declare it as [keyspaces.{keyspace}]",
                line,
            )
        shard = text("shard")
        try:
            KeyRange.parse(shard)
        except ValueError as exc:
            raise self._fail(f"{where}.shard", str(exc), line) from None
        tablet_cell = text("cell", cell)
        type_name = text("type", "primary")
        if type_name.lower() not in _TYPES:
            raise self._fail(
                f"{where}.type", f"bad type {type_name!r}: use primary, replica or rdonly", line
            )
        uid = spec.get("uid")
        if isinstance(uid, bool) or not isinstance(uid, int) or not 0 < uid < 2**32:
            raise self._fail(f"{where}.uid", "missing or not a positive integer", line)
        simulated = spec.get("simulated", False)
        if not isinstance(simulated, bool):
            raise self._fail(f"{where}.simulated", "must be true or false", line)
        address = spec.get("address")
        if simulated == (address is not None):
            raise self._fail(
                where, 'needs exactly one of address = "host:port" or simulated = true', line
            )
        if address is not None:
            if not isinstance(address, str) or not _ADDRESS.match(address):
                raise self._fail(f"{where}.address", f"{address!r} is not host:port", line)
            if not 0 < int(address.rsplit(":", 1)[1]) < 65536:
                raise self._fail(f"{where}.address", f"port out of range in {address!r}", line)
        return TabletInfo(keyspace, shard, tablet_cell, uid, _TYPES[type_name.lower()], address)


def partition_problem(shards: list[str]) -> str | None:
    """None if ``shards`` cover the whole key space exactly once, else what is wrong."""
    parsed: list[tuple[KeyRange, str]] = []
    for name in shards:
        try:
            parsed.append((KeyRange.parse(name), name))
        except ValueError as exc:
            return str(exc)
    parsed.sort(key=lambda item: item[0].start)
    expected: bytes | None = b""
    for key_range, name in parsed:
        if expected is None or key_range.start < expected:
            return f"shard {name!r} overlaps another shard"
        if key_range.start > expected:
            return f"key range gap: nothing covers {expected.hex()!r} up to shard {name!r}"
        if key_range.end and key_range.end <= key_range.start:
            return f"shard {name!r} is an empty key range"
        expected = key_range.end or None
    if expected is not None:
        return f"key range gap after {expected.hex()!r}: the last shard must end unbounded"
    return None


def dump_topology(topology: Topology) -> str:
    """TOML text for ``topology`` that :func:`load_topology` reads back equal."""
    names = {v: k for k, v in _TYPES.items()}
    lines = [f"cell = {_quote(topology.cell)}", ""]
    for name, info in topology.keyspaces.items():
        shards = ", ".join(_quote(s) for s in info.shards)
        lines += [f"[keyspaces.{_quote(name)}]", f"shards = [{shards}]", ""]
    for tablet in topology.tablets:
        lines += [
            "[[tablets]]",
            f"keyspace = {_quote(tablet.keyspace)}",
            f"shard = {_quote(tablet.shard)}",
            f"cell = {_quote(tablet.cell)}",
            f"type = {_quote(names.get(tablet.tablet_type, 'primary'))}",
            f"uid = {tablet.uid}",
            (
                f"address = {_quote(tablet.address)}"
                if tablet.address is not None
                else "simulated = true"
            ),
            "",
        ]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
