"""Load the gateway's topology from a TOML file.

The format (documented in the README, section "Topology file")::

    cell = "zone1"
    [keyspaces.commerce]
    shards = ["-80", "80-"]        # serving shards, in order
    tables = ["customer"]          # optional: names for SHOW TABLES
    share = false                  # optional: never share this keyspace's tablet streams
    [[tablets]]
    keyspace = "commerce"
    shard = "-80"
    cell = "zone1"                 # optional, defaults to the top-level cell
    type = "primary"               # primary | replica | rdonly
    uid = 101
    address = "127.0.0.1:15101"    # or: simulated = true
    [cells_aliases]                # optional: Vitess cell aliases
    region1 = ["zone1", "zone2"]   # a cell belongs to one alias at most

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
from vsmux.topology._address import AddressError, split_address
from vsmux.topology._model import KeyRange, KeyspaceInfo, TabletInfo, Topology

__all__ = [
    "TopologyError",
    "dump_topology",
    "load_topology",
    "parse_topology",
    "partition_problem",
    "read_topology",
]

_TOP_KEYS = {"cell", "keyspaces", "tablets", "failover_buffer", "cells_aliases"}
# [failover_buffer] keys -> (GatewaySettings field, kind): seconds are > 0.
_FAILOVER_KEYS: dict[str, tuple[str, type]] = {
    "enabled": ("failover_buffer_enabled", bool),
    "window": ("failover_window", float),
    "max_duration": ("failover_max_duration", float),
    "min_time_between": ("failover_min_time_between", float),
    "dry_run": ("failover_dry_run", bool),
}
_KEYSPACE_KEYS = {"shards", "tables", "share"}
_TABLET_KEYS = {"keyspace", "shard", "cell", "type", "uid", "address", "simulated"}
_TYPES = {"primary": TabletType.PRIMARY, "replica": TabletType.REPLICA, "rdonly": TabletType.RDONLY}


class TopologyError(ValueError):
    """A topology file that cannot be used, and why."""


def load_topology(source: str | PathLike[str]) -> Topology:
    """Load a topology from a path, or from TOML text when given a ``str`` holding TOML.

    A ``str`` is read as a path if a file by that name exists or it has no
    newline and no ``=``; otherwise it is parsed as TOML text.
    """
    if isinstance(source, str) and ("\n" in source or ("=" in source and not _is_file(source))):
        return parse_topology(source, origin="<text>")
    return read_topology(source)


def read_topology(path: str | PathLike[str]) -> Topology:
    """The topology in the file at ``path`` (table lists included)."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {file}: {exc.strerror or exc}") from None
    return _parse(text, str(file))


def _is_file(name: str) -> bool:
    try:
        return Path(name).is_file()
    except OSError:
        return False


def parse_topology(text: str, origin: str = "<text>") -> Topology:
    """Parse and check topology TOML ``text``; ``origin`` names it in errors."""
    return _parse(text, origin)


def _parse(text: str, origin: str) -> Topology:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{origin}: not valid TOML: {exc}") from None
    return _Checker(text, origin).build(raw)


class _Lines:
    """Where things are in the file's text, found for error messages only.

    Lines are searched only when a check fails, and the ``[[tablets]]`` and
    ``[keyspaces.<name>]`` headers are indexed in one pass on first use, so a
    good file costs nothing here and a bad one costs one pass: locating the
    n-th tablet by rescanning the text for each tablet made loading quadratic
    (8k tablets took half a minute).
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: list[str] | None = None
        self._tablets: list[int] | None = None
        self._keyspaces: dict[str, int] | None = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self._text.splitlines()
        return self._lines

    def _index(self) -> None:
        tablets: list[int] = []
        keyspaces: dict[str, int] = {}
        for number, line in enumerate(self.lines, start=1):
            code = line.split("#", 1)[0]
            if _TABLET_HEADER.search(code):
                tablets.append(number)
                continue
            match = _KEYSPACE_HEADER.search(code)
            if match:
                keyspaces.setdefault(match.group(1) or match.group(2), number)
        self._tablets, self._keyspaces = tablets, keyspaces

    def first(self, pattern: str) -> int | None:
        """The first line whose code (comment cut) matches ``pattern``."""
        regex = re.compile(pattern)
        for number, line in enumerate(self.lines, start=1):
            if regex.search(line.split("#", 1)[0]):
                return number
        return None

    def key(self, key: str) -> int | None:
        return self.first(rf"^\s*{re.escape(key)}\s*=")

    def keyspace(self, name: str) -> int | None:
        if self._keyspaces is None:
            self._index()
        assert self._keyspaces is not None
        return self._keyspaces.get(name)

    def keyspace_key(self, name: str, key: str) -> int | None:
        """The line of ``key = `` inside ``[keyspaces.<name>]`` (else the header's)."""
        return self.section_key(self.keyspace(name), key)

    def section_key(self, header: int | None, key: str) -> int | None:
        """The line of ``key = `` (bare or quoted) in the table whose header is on line ``header``.

        The header's line when the key is not found there; None without a header.
        """
        if header is None:
            return None
        regex = re.compile(rf'^\s*(?:{re.escape(key)}|"{re.escape(key)}")\s*=')
        for number in range(header + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if line.lstrip().startswith("["):
                break
            if regex.search(line):
                return number
        return header

    def tablet(self, index: int) -> int | None:
        if self._tablets is None:
            self._index()
        assert self._tablets is not None
        return self._tablets[index] if 0 <= index < len(self._tablets) else None


_TABLET_HEADER = re.compile(r"^\s*\[\[\s*tablets\s*\]\]")
_KEYSPACE_HEADER = re.compile(r'^\s*\[\s*keyspaces\.(?:"([^"]*)"|([^\s\]]+))\s*\]')


class _Checker:
    """Checks a parsed file in time linear in its size.

    Every cross-check (duplicate uids, serving shards without tablets, a
    keyspace mixing simulated and addressed tablets) reads sets built while
    the tablets are checked, never a rescan of all tablets per shard.
    """

    def __init__(self, text: str, origin: str) -> None:
        self.where = _Lines(text)
        self.origin = origin

    def _fail(self, where: str, message: str, line: int | None = None) -> TopologyError:
        at = f"{self.origin}:{line}" if line else self.origin
        return TopologyError(f"{at}: {where}: {message}")

    # -- checks --------------------------------------------------------------

    def build(self, raw: dict[str, Any]) -> Topology:
        for key in raw:
            if key not in _TOP_KEYS:
                raise self._fail(
                    repr(key),
                    f"unknown key (expected one of {sorted(_TOP_KEYS)})",
                    self.where.key(key) or self.where.first(rf"^\s*\[+\s*{re.escape(key)}\b"),
                )
        cell = raw.get("cell")
        if not isinstance(cell, str) or not cell:
            raise self._fail("cell", "missing or not a non-empty string", self.where.key("cell"))
        keyspaces = raw.get("keyspaces")
        if not isinstance(keyspaces, dict) or not keyspaces:
            raise self._fail("keyspaces", "no keyspaces: add a [keyspaces.<name>] table")
        topology = Topology(cell=cell, failover_buffer=self._failover(raw.get("failover_buffer")))
        for name, spec in keyspaces.items():
            topology.keyspaces[name] = self._keyspace(name, spec)
        tablets = raw.get("tablets", [])
        if not isinstance(tablets, list):
            raise self._fail("tablets", "must be an array of tables: use [[tablets]]")
        uids: dict[int, int] = {}
        tablet_cells: set[str] = set()
        with_tablets: set[tuple[str, str]] = set()
        simulated: dict[str, set[bool]] = {}
        checked: list[TabletInfo] = []
        for index, spec in enumerate(tablets):
            tablet = self._tablet(index, spec, topology, cell)
            first = uids.setdefault(tablet.uid, index)
            if first != index:
                raise self._fail(
                    f"tablets[{index}].uid",
                    f"duplicate uid {tablet.uid} (also used by tablets[{first}]); "
                    "every tablet needs its own uid",
                    self.where.tablet(index),
                )
            with_tablets.add((tablet.keyspace, tablet.shard))
            tablet_cells.add(tablet.cell)
            simulated.setdefault(tablet.keyspace, set()).add(tablet.address is None)
            checked.append(tablet)
        topology.tablets.extend(checked)
        for name, info in topology.keyspaces.items():
            for shard in info.shards:
                if (name, shard) not in with_tablets:
                    raise self._fail(
                        f"keyspaces.{name}.shards",
                        f"shard {shard!r} is listed but has no [[tablets]] entry",
                        self.where.keyspace_key(name, "shards"),
                    )
            if len(simulated.get(name, ())) > 1:
                raise self._fail(
                    f"keyspaces.{name}",
                    "mixes simulated tablets with addressed ones; a keyspace is either "
                    "simulated or real",
                    self.where.keyspace(name),
                )
        topology.cells_aliases = self._cells_aliases(
            raw.get("cells_aliases"), {cell, *tablet_cells}
        )
        return topology

    def _cells_aliases(self, spec: Any, cells: set[str]) -> dict[str, list[str]]:
        """The ``[cells_aliases]`` table: alias name -> its cells (none given: empty).

        ``cells`` are the cells the file names elsewhere (the gateway's and
        the tablets'). As in Vitess, a cell belongs to one alias at most; an
        alias may not share its name with a cell, since a requested cell name
        must mean one thing.
        """
        if spec is None:
            return {}
        header = self.where.first(r"^\s*\[\s*cells_aliases\s*\]") or self.where.key("cells_aliases")
        if not isinstance(spec, dict):
            raise self._fail(
                "cells_aliases",
                'must be a table: [cells_aliases] with lines like region1 = ["zone1", "zone2"]',
                header,
            )
        aliases: dict[str, list[str]] = {}
        owner: dict[str, str] = {}  # cell -> the alias that has it
        for name, members in spec.items():

            def fail(message: str, name: str = name) -> TopologyError:
                return self._fail(
                    f"cells_aliases.{name}", message, self.where.section_key(header, name)
                )

            if not name:
                raise fail("an alias needs a non-empty name")
            if (
                not isinstance(members, list)
                or not members
                or not all(isinstance(m, str) and m for m in members)
            ):
                raise fail(f'must be a non-empty list of cell names, e.g. {name} = ["zone1"]')
            seen: set[str] = set()
            for member in members:
                if member in seen:
                    raise fail(f"lists cell {member!r} twice")
                seen.add(member)
                other = owner.setdefault(member, name)
                if other != name:
                    raise fail(
                        f"cell {member!r} is already in alias {other!r}; a cell may belong "
                        "to one alias only (Vitess refuses overlapping aliases)"
                    )
            aliases[name] = list(members)
        for name in aliases:
            if name in cells or name in owner:
                raise self._fail(
                    f"cells_aliases.{name}",
                    f"{name!r} is also the name of a cell; give the alias a name of its own",
                    self.where.section_key(header, name),
                )
        return aliases

    def _failover(self, spec: Any) -> dict[str, float | bool]:
        """The ``[failover_buffer]`` table as settings (none given: empty)."""
        if spec is None:
            return {}
        line = self.where.first(r"^\s*\[\s*failover_buffer\s*\]")
        if not isinstance(spec, dict):
            raise self._fail("failover_buffer", "must be a table: use [failover_buffer]", line)
        out: dict[str, float | bool] = {}
        for key, value in spec.items():
            if key not in _FAILOVER_KEYS:
                raise self._fail(
                    f"failover_buffer.{key}",
                    f"unknown key (expected one of {sorted(_FAILOVER_KEYS)})",
                    line,
                )
            setting, kind = _FAILOVER_KEYS[key]
            if kind is bool:
                if not isinstance(value, bool):
                    raise self._fail(f"failover_buffer.{key}", "must be true or false", line)
                out[setting] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise self._fail(
                        f"failover_buffer.{key}", "must be a number of seconds above 0", line
                    )
                out[setting] = float(value)
        return out

    def _keyspace(self, name: str, spec: Any) -> KeyspaceInfo:
        where = f"keyspaces.{name}"
        if not isinstance(spec, dict):
            raise self._fail(
                where,
                "must be a table: [keyspaces.<name>] with shards = [...]",
                self.where.keyspace(name),
            )
        for key in spec:
            if key not in _KEYSPACE_KEYS:
                raise self._fail(
                    f"{where}.{key}",
                    f"unknown key (expected one of {sorted(_KEYSPACE_KEYS)})",
                    self.where.keyspace(name),
                )

        def fail(key: str, message: str) -> TopologyError:
            return self._fail(f"{where}.{key}", message, self.where.keyspace_key(name, "shards"))

        shards = spec.get("shards")
        if (
            not isinstance(shards, list)
            or not shards
            or not all(isinstance(s, str) and s for s in shards)
        ):
            raise fail("shards", "missing or not a list of shard names")
        if len(set(shards)) != len(shards):
            raise fail("shards", "lists a shard twice")
        problem = partition_problem(shards)
        if problem is not None:
            raise fail("shards", problem)
        tables = spec.get("tables")
        if tables is not None and (
            not isinstance(tables, list) or not all(isinstance(t, str) for t in tables)
        ):
            raise fail("tables", "must be a list of table names")
        share = spec.get("share", True)
        if not isinstance(share, bool):
            raise self._fail(
                f"{where}.share",
                "must be true or false (false: the keyspace's streams never share tablet streams)",
                self.where.keyspace_key(name, "share"),
            )
        return KeyspaceInfo(
            name, list(shards), None if tables is None else list(tables), share=share
        )

    def _tablet(self, index: int, spec: Any, topology: Topology, cell: str) -> TabletInfo:
        where = f"tablets[{index}]"

        def fail(key: str | None, message: str) -> TopologyError:
            # The line is looked up only now, on the way out with an error.
            at = where if key is None else f"{where}.{key}"
            return self._fail(at, message, self.where.tablet(index))

        if not isinstance(spec, dict):
            raise fail(None, "must be a table ([[tablets]])")
        for key in spec:
            if key not in _TABLET_KEYS:
                raise fail(key, f"unknown key (expected one of {sorted(_TABLET_KEYS)})")

        def text(key: str, default: str | None = None) -> str:
            value = spec.get(key, default)
            if not isinstance(value, str) or not value:
                raise fail(key, "missing or not a non-empty string")
            return value

        keyspace = text("keyspace")
        if keyspace not in topology.keyspaces:
            raise fail(
                "keyspace", f"unknown keyspace {keyspace!r}: declare it as [keyspaces.{keyspace}]"
            )
        shard = text("shard")
        try:
            KeyRange.parse(shard)
        except ValueError as exc:
            raise fail("shard", str(exc)) from None
        tablet_cell = text("cell", cell)
        type_name = text("type", "primary")
        if type_name.lower() not in _TYPES:
            raise fail("type", f"bad type {type_name!r}: use primary, replica or rdonly")
        uid = spec.get("uid")
        if isinstance(uid, bool) or not isinstance(uid, int) or not 0 < uid < 2**32:
            raise fail("uid", "missing or not a positive integer")
        simulated = spec.get("simulated", False)
        if not isinstance(simulated, bool):
            raise fail("simulated", "must be true or false")
        address = spec.get("address")
        if simulated == (address is not None):
            raise fail(None, 'needs exactly one of address = "host:port" or simulated = true')
        if address is not None:
            if not isinstance(address, str):
                raise fail("address", f"{address!r} is not host:port")
            try:
                _, port = split_address(address)
            except AddressError as exc:
                raise fail("address", str(exc)) from None
            if port == 0:
                raise fail("address", f"port out of range in {address!r}")
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
    if topology.failover_buffer:
        keys = {setting: key for key, (setting, _kind) in _FAILOVER_KEYS.items()}
        lines.append("[failover_buffer]")
        for setting, value in topology.failover_buffer.items():
            text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
            lines.append(f"{keys[setting]} = {text}")
        lines.append("")
    if topology.cells_aliases:
        lines.append("[cells_aliases]")
        for name, cells in topology.cells_aliases.items():
            lines.append(f"{_quote(name)} = [{', '.join(_quote(c) for c in cells)}]")
        lines.append("")
    for name, info in topology.keyspaces.items():
        shards = ", ".join(_quote(s) for s in info.shards)
        lines += [f"[keyspaces.{_quote(name)}]", f"shards = [{shards}]"]
        if info.tables is not None:
            lines.append(f"tables = [{', '.join(_quote(t) for t in info.tables)}]")
        if not info.share:
            lines.append("share = false")
        lines.append("")
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
