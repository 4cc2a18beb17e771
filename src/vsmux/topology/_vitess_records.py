"""A Vitess cluster's topology records, as its topology server holds them.

Rules of this module:

- Keys follow Vitess's etcd2 layout. Under the global root:
  ``keyspaces/<ks>/Keyspace``, ``keyspaces/<ks>/shards/<shard>/Shard``,
  ``cells/<cell>/CellInfo``, ``cells_aliases/<name>/CellsAlias``. Under a
  cell's root (``CellInfo.root`` on ``CellInfo.server_address``):
  ``tablets/<cell>-<uid>/Tablet``, ``keyspaces/<ks>/SrvKeyspace``,
  ``SrvVSchema``. Values are the binary protobuf of the ``topodata`` (and
  ``vschema``) messages. Any other key (locks, ShardReplication, elections,
  ...) is ignored.
- Pure: records go in as ``(key, bytes or None)``, a :class:`Topology` comes
  out. No I/O, no waiting; the watcher that feeds it lives above.
- A record that does not parse or does not make sense (a tablet without a
  gRPC port, a SrvKeyspace whose shards leave a key-range gap) is refused:
  the call returns a problem naming the full key, and the key keeps its last
  good value (none if it never had one). The rest keeps serving.
- What the gateway reads: a keyspace is served with the shards of its cell's
  SrvKeyspace PRIMARY partition, in key-range order; its tables come from
  SrvVSchema; tablets from the cell's Tablet records, addressed as
  ``hostname:port_map["grpc"]``, and from the Tablet records of any other
  cell it is told to watch (each under its own CellInfo root). Only the own
  cell's SrvKeyspace and SrvVSchema route requests, as in vtgate; of the
  other cells only tablets are read. A Shard record's ``primary_alias`` wins
  over a tablet's own type: that tablet is PRIMARY, another one still
  recorded PRIMARY is taken as a REPLICA (its record is stale).
- Cell aliases come from the CellsAlias records (``cells``). Vitess refuses
  to write an alias that shares a cell with another one; a record that does
  anyway is refused here the same way (the alias already holding the cell
  keeps it). An alias named like a cell that has a CellInfo is left out of
  the topology: vtgate reads a requested name as a cell first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from vsmux.proto import topodata, vschema
from vsmux.proto.google_proto_descriptor_pool import default_google_proto_descriptor_pool
from vsmux.proto.topodata import TabletType
from vsmux.topology._address import split_address
from vsmux.topology._model import KeyRange, KeyspaceInfo, TabletInfo, Topology, tablet_alias

__all__ = [
    "CellLocation",
    "RecordError",
    "VitessRecords",
    "cells_alias_record",
    "serving_shards",
    "vitess_records",
]


@dataclass(frozen=True, slots=True)
class CellLocation:
    """Where a cell's topology lives: a server address and a root path."""

    server_address: str
    root: str


class RecordError(ValueError):
    """A record that cannot be used; the message says why."""


def _join(root: str, relative: str) -> str:
    return f"{root.rstrip('/')}/{relative}"


def _relative(root: str, key: str) -> str | None:
    prefix = root.rstrip("/") + "/"
    return key[len(prefix) :] if key.startswith(prefix) else None


@cache
def _strict_parser(full_name: str) -> Any:
    descriptor = default_google_proto_descriptor_pool.FindMessageTypeByName(full_name)
    return message_factory.GetMessageClass(descriptor)


def _parse(message_type: Any, value: bytes) -> object:
    """``value`` decoded as ``message_type``; RecordError if it is not one.

    protobuf's own parser checks the wire format first: the generated
    classes' decoder accepts some corrupt bytes as an empty message.
    """
    full_name = f"{message_type.__module__.rsplit('.', 1)[-1]}.{message_type.__name__}"
    try:
        _strict_parser(full_name).FromString(value)
        return message_type.parse(value)
    # protobuf raises DecodeError; the generated decoder, on bytes of the
    # wrong types, whatever the field it stopped at leads to.
    except Exception:
        raise RecordError(f"not a {full_name} record (malformed protobuf)") from None


@cache
def _cells_alias_class() -> Any:
    """A protobuf class for Vitess's ``topodata.CellsAlias``: ``repeated string cells = 2``.

    Described here rather than in the generated messages: it is the only
    message of its kind the gateway reads, and one field is all it has.
    """
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="vsmux/topology/cells_alias.proto", package="topodata", syntax="proto3"
    )
    message = file.message_type.add(name="CellsAlias")
    message.field.add(name="cells", number=2, type=field.TYPE_STRING, label=field.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("topodata.CellsAlias"))


def cells_alias_record(cells: list[str]) -> bytes:
    """The bytes of a ``topodata.CellsAlias`` record grouping ``cells``."""
    return bytes(_cells_alias_class()(cells=cells).SerializeToString())


def _alias_cells(value: bytes) -> list[str]:
    """The cells a CellsAlias record groups, each once; RecordError if it is not one."""
    try:
        cells = list(_cells_alias_class().FromString(value).cells)
    except Exception:  # DecodeError, or bytes that are not UTF-8 in a string field
        raise RecordError("not a topodata.CellsAlias record (malformed protobuf)") from None
    if not all(cells):
        raise RecordError("it names an empty cell")
    return list(dict.fromkeys(cells))


def _key_range(message: topodata.KeyRange | None, shard: str) -> KeyRange:
    if message is not None and (message.start or message.end):
        return KeyRange(message.start, message.end)
    try:
        return KeyRange.parse(shard)
    except ValueError as exc:
        raise RecordError(str(exc)) from None


def serving_shards(record: topodata.SrvKeyspace) -> list[str]:
    """The PRIMARY partition's shards in key-range order; RecordError on a gap or overlap."""
    partitions = [p for p in record.partitions if p.served_type == TabletType.PRIMARY]
    if not partitions:
        raise RecordError("no PRIMARY partition")
    ranged = sorted(
        ((_key_range(ref.key_range, ref.name), ref.name) for ref in partitions[0].shard_references),
        key=lambda item: item[0].start,
    )
    if not ranged:
        raise RecordError("the PRIMARY partition names no shards")
    expected = b""
    previous = "the start"
    for key_range, name in ranged:
        if key_range.start != expected:
            what = "gap" if key_range.start > expected else "overlap"
            raise RecordError(f"key-range {what} between {previous} and shard {name!r}")
        if key_range.end == b"" and name != ranged[-1][1]:
            raise RecordError(f"key-range overlap: shard {name!r} runs to the end")
        expected, previous = key_range.end, f"shard {name!r}"
    if expected != b"":
        raise RecordError(f"key-range gap after {previous}: nothing reaches the end")
    return [name for _, name in ranged]


def _tablet(alias_text: str, record: topodata.Tablet) -> TabletInfo | None:
    """The tablet a Tablet record describes; None for one not in a shard yet."""
    alias = record.alias
    if alias is None or tablet_alias(alias.cell, alias.uid) != alias_text:
        raise RecordError(f"its alias does not match the key's {alias_text!r}")
    if not record.keyspace or not record.shard:
        return None  # a tablet that has not joined a shard serves nothing yet
    port = record.port_map.get("grpc", 0)
    if port <= 0:
        raise RecordError('it has no gRPC port (port_map["grpc"])')
    if not record.hostname:
        raise RecordError("it has no hostname")
    host = f"[{record.hostname}]" if ":" in record.hostname else record.hostname
    return TabletInfo(
        keyspace=record.keyspace,
        shard=record.shard,
        cell=alias.cell,
        uid=alias.uid,
        tablet_type=TabletType(record.type),
        address=f"{host}:{port}",
    )


def _tablet_record(alias_text: str, value: bytes) -> TabletInfo | None:
    """The tablet a Tablet record's bytes describe; RecordError if it cannot be used."""
    record = _parse(topodata.Tablet, value)
    assert isinstance(record, topodata.Tablet)
    return _tablet(alias_text, record)


def _remember(values: dict[str, bytes], key: str, value: bytes | None) -> None:
    if value is None:
        values.pop(key, None)
    else:
        values[key] = value


def _reload(
    kept: dict[str, bytes],
    values: Mapping[str, bytes],
    apply: Callable[[str, bytes | None], str | None],
) -> list[str]:
    """Make a root's ``kept`` records those of a full read, ``values``; the problems found.

    Keys gone are deleted and changed ones applied (``apply`` keeps what it
    accepts in ``kept``), with the same refusals as single changes.
    """
    for key in [k for k in kept if k not in values]:
        apply(key, None)
    return [
        problem
        for key, value in sorted(values.items())
        if kept.get(key) != value and (problem := apply(key, value))
    ]


class _TabletRecords:
    """The Tablet records under one root: those of a cell other than the gateway's own.

    Same rules as the own cell's tablets: a record that cannot be used is
    refused with its key and the key keeps its last good value.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.tablets: dict[str, TabletInfo | None] = {}
        self._values: dict[str, bytes] = {}

    def load(self, values: Mapping[str, bytes]) -> list[str]:
        return _reload(self._values, values, self.apply)

    def apply(self, key: str, value: bytes | None) -> str | None:
        relative = _relative(self.root, key)
        if relative is None:
            return None
        match relative.split("/"):
            case ["tablets", alias, "Tablet"]:
                try:
                    if value is None:
                        self.tablets.pop(alias, None)
                    else:
                        self.tablets[alias] = _tablet_record(alias, value)
                except RecordError as exc:
                    return f"{key}: {exc}; skipped"
                _remember(self._values, key, value)
        # Anything else (SrvKeyspace, ShardReplication, ...) is not read from
        # another cell: routing follows the gateway's own cell.
        return None


class VitessRecords:
    """The records of one global root, one cell's root and other cells' tablets, kept by key.

    ``apply_*`` take a full key and its new value (None: deleted) and return
    a problem (a string naming the key) when the value is refused;
    ``load_*`` make a root's records equal to a full read of it (after a
    reconnect: keys gone are deleted, changed ones applied, with the same
    refusals) and return the problems found. ``*_other_cell`` do the same for
    the Tablet records of a cell other than ``cell``, under that cell's root.
    :meth:`update` writes the result into a :class:`Topology` in place, as the
    simulated cluster does on a reshard.
    """

    def __init__(self, cell: str, global_root: str) -> None:
        self.cell = cell
        self.global_root = global_root
        self.cell_root: str | None = None
        self._shards: dict[tuple[str, str], topodata.Shard] = {}
        self._cells: dict[str, CellLocation] = {}
        self._tablets: dict[str, TabletInfo | None] = {}
        self._serving: dict[str, list[str]] = {}
        self._tables: dict[str, list[str]] | None = None
        self._aliases: dict[str, list[str]] = {}
        self._other_cells: dict[str, _TabletRecords] = {}
        # The accepted value of every record key, per root.
        self._global_values: dict[str, bytes] = {}
        self._cell_values: dict[str, bytes] = {}

    # -- global records -------------------------------------------------------

    def cell_location(self, cell: str | None = None) -> CellLocation | None:
        """Where a cell (by default this gateway's) keeps its records (its CellInfo), if known."""
        return self._cells.get(self.cell if cell is None else cell)

    def load_global(self, values: Mapping[str, bytes]) -> list[str]:
        return _reload(self._global_values, values, self.apply_global)

    def apply_global(self, key: str, value: bytes | None) -> str | None:
        relative = _relative(self.global_root, key)
        if relative is None:
            return None
        parts = relative.split("/")
        try:
            match parts:
                case ["keyspaces", _keyspace, "Keyspace"]:
                    # Nothing in it is used (serving shards come from SrvKeyspace);
                    # parsed so that a broken record is reported like the others.
                    if value is not None:
                        _parse(topodata.Keyspace, value)
                case ["keyspaces", keyspace, "shards", shard, "Shard"]:
                    if value is None:
                        self._shards.pop((keyspace, shard), None)
                    else:
                        shard_record = _parse(topodata.Shard, value)
                        assert isinstance(shard_record, topodata.Shard)
                        _key_range(shard_record.key_range, shard)
                        self._shards[(keyspace, shard)] = shard_record
                case ["cells", cell, "CellInfo"]:
                    if value is None:
                        self._cells.pop(cell, None)
                    else:
                        info = _parse(topodata.CellInfo, value)
                        assert isinstance(info, topodata.CellInfo)
                        if not info.server_address or not info.root:
                            raise RecordError("it needs both server_address and root")
                        self._cells[cell] = CellLocation(info.server_address, info.root)
                case ["cells_aliases", name, "CellsAlias"]:
                    if value is None:
                        self._aliases.pop(name, None)
                    else:
                        self._aliases[name] = self._unshared(name, _alias_cells(value))
                case _:
                    return None  # locks, elections, ...: not read
        except RecordError as exc:
            return f"{key}: {exc}; skipped"
        _remember(self._global_values, key, value)
        return None

    def _unshared(self, name: str, cells: list[str]) -> list[str]:
        """``cells``, unless another alias than ``name`` already has one of them."""
        for other, others in sorted(self._aliases.items()):
            shared = [cell for cell in cells if cell in others]
            if other != name and shared:
                raise RecordError(
                    f"cell {shared[0]!r} is already in alias {other!r}; a cell belongs to "
                    "one alias at most (remove it from one of them)"
                )
        return cells

    def cells_aliases(self) -> dict[str, list[str]]:
        """Alias name -> cells, by name; an alias named like a known cell is left out."""
        return {
            name: list(cells)
            for name, cells in sorted(self._aliases.items())
            if name not in self._cells
        }

    # -- the cell's records -----------------------------------------------------

    def load_cell(self, root: str, values: Mapping[str, bytes]) -> list[str]:
        if root != self.cell_root:  # another cell root: nothing known carries over
            self.cell_root = root
            self._tablets.clear()
            self._serving.clear()
            self._tables = None
            self._cell_values.clear()
        return _reload(self._cell_values, values, self.apply_cell)

    def apply_cell(self, key: str, value: bytes | None) -> str | None:
        if self.cell_root is None:
            return None
        relative = _relative(self.cell_root, key)
        if relative is None:
            return None
        parts = relative.split("/")
        try:
            match parts:
                case ["tablets", alias, "Tablet"]:
                    if value is None:
                        self._tablets.pop(alias, None)
                    else:
                        self._tablets[alias] = _tablet_record(alias, value)
                case ["keyspaces", keyspace, "SrvKeyspace"]:
                    if value is None:
                        self._serving.pop(keyspace, None)
                    else:
                        srv = _parse(topodata.SrvKeyspace, value)
                        assert isinstance(srv, topodata.SrvKeyspace)
                        self._serving[keyspace] = serving_shards(srv)
                case ["SrvVSchema"]:
                    if value is None:
                        self._tables = None
                    else:
                        schema = _parse(vschema.SrvVSchema, value)
                        assert isinstance(schema, vschema.SrvVSchema)
                        self._tables = {
                            name: sorted(ks.tables) for name, ks in schema.keyspaces.items()
                        }
                case _:
                    return None  # ShardReplication, ...: not read
        except RecordError as exc:
            return f"{key}: {exc}; skipped"
        _remember(self._cell_values, key, value)
        return None

    # -- other cells' tablets -----------------------------------------------------

    def load_other_cell(self, cell: str, root: str, values: Mapping[str, bytes]) -> list[str]:
        """Make ``cell``'s tablets those of a full read of ``root``; the problems found."""
        records = self._other_cells.get(cell)
        if records is None or records.root != root:  # another root: nothing carries over
            records = self._other_cells[cell] = _TabletRecords(root)
        return records.load(values)

    def apply_other_cell(self, cell: str, key: str, value: bytes | None) -> str | None:
        """Apply one changed key of ``cell``'s root (ignored before its first load)."""
        records = self._other_cells.get(cell)
        return None if records is None else records.apply(key, value)

    def forget_other_cell(self, cell: str) -> None:
        """Drop what is known of ``cell``'s tablets (its CellInfo is gone)."""
        self._other_cells.pop(cell, None)

    def other_cell_tablets(self, cell: str) -> int:
        """How many tablets of ``cell``'s root serve a shard."""
        records = self._other_cells.get(cell)
        return 0 if records is None else sum(1 for t in records.tablets.values() if t is not None)

    # -- the result ---------------------------------------------------------------

    def _primaries(self) -> dict[tuple[str, str], str]:
        return {
            shard: tablet_alias(record.primary_alias.cell, record.primary_alias.uid)
            for shard, record in self._shards.items()
            if record.primary_alias is not None and record.primary_alias.cell
        }

    def _all_tablets(self) -> dict[str, TabletInfo | None]:
        """Every known tablet by alias: the own cell's, then other cells' not seen yet."""
        found = dict(self._tablets)
        for cell in sorted(self._other_cells):
            for alias, tablet in self._other_cells[cell].tablets.items():
                found.setdefault(alias, tablet)
        return found

    def tablets(self) -> list[TabletInfo]:
        """The watched cells' tablets in alias order, typed by the Shard records' primaries."""
        primaries = self._primaries()
        known = self._all_tablets()
        out = []
        for alias in sorted(known):
            tablet = known[alias]
            if tablet is None:
                continue
            primary = primaries.get((tablet.keyspace, tablet.shard))
            if primary == alias:
                tablet = replace(tablet, tablet_type=TabletType.PRIMARY)
            elif primary is not None and tablet.tablet_type == TabletType.PRIMARY:
                tablet = replace(tablet, tablet_type=TabletType.REPLICA)
            out.append(tablet)
        return out

    def keyspaces(self) -> dict[str, KeyspaceInfo]:
        """The keyspaces this cell serves (those with a good SrvKeyspace)."""
        tables = self._tables
        return {
            name: KeyspaceInfo(
                name,
                list(shards),
                None if tables is None or name not in tables else list(tables[name]),
            )
            for name, shards in sorted(self._serving.items())
        }

    def topology(self) -> Topology:
        """A new :class:`Topology` of what the records say now."""
        return Topology(
            cell=self.cell,
            keyspaces=self.keyspaces(),
            tablets=self.tablets(),
            cells_aliases=self.cells_aliases(),
        )

    def update(self, topology: Topology) -> bool:
        """Make ``topology`` say what the records say, in place; True if anything changed.

        Keyspace objects are kept and their shards and tables replaced, so a
        reader holding one sees the change; the tablet list is replaced only
        when it differs.
        """
        changed = False
        keyspaces = self.keyspaces()
        for name in [n for n in topology.keyspaces if n not in keyspaces]:
            del topology.keyspaces[name]
            changed = True
        for name, info in keyspaces.items():
            current = topology.keyspaces.get(name)
            if current is None:
                topology.keyspaces[name] = info
                changed = True
                continue
            if current.shards != info.shards:
                current.shards = info.shards
                changed = True
            if current.tables != info.tables:
                current.tables = info.tables
                changed = True
        tablets = self.tablets()
        if list(topology.tablets) != tablets:
            topology.tablets[:] = tablets
            changed = True
        aliases = self.cells_aliases()
        if topology.cells_aliases != aliases:
            topology.cells_aliases = aliases
            changed = True
        return changed

    def describe(self) -> str:
        """One line for a log: how many keyspaces, shards and tablets."""
        shards = sum(len(s) for s in self._serving.values())
        tablets = sum(1 for t in self._all_tablets().values() if t is not None)
        return f"{len(self._serving)} keyspaces, {shards} serving shards, {tablets} tablets"


def _alias(tablet: TabletInfo) -> topodata.TabletAlias:
    return topodata.TabletAlias(cell=tablet.cell, uid=tablet.uid)


def _range_message(shard: str) -> topodata.KeyRange | None:
    key_range = KeyRange.parse(shard)
    if key_range == KeyRange(b"", b""):
        return None
    return topodata.KeyRange(start=key_range.start, end=key_range.end)


def vitess_records(
    topology: Topology, *, global_root: str, cell_root: str, cell_address: str
) -> dict[str, bytes]:
    """Every record a Vitess cluster shaped like ``topology`` keeps, by key.

    What vttablets and vtctld would write for it: a Keyspace per keyspace, a
    Shard per shard that has tablets (its first PRIMARY tablet as
    ``primary_alias``, ``is_primary_serving`` when the keyspace serves it),
    the cell's CellInfo (``cell_address`` and ``cell_root``), a CellsAlias
    per cell alias, and under the
    cell's root each Tablet (from its ``host:port`` address, as its gRPC
    port), a SrvKeyspace per keyspace (PRIMARY, REPLICA and RDONLY partitions
    of the serving shards) and the SrvVSchema (the keyspaces' tables, where
    known). Every tablet must have an address.
    """
    records: dict[str, bytes] = {}
    cell = topology.cell
    records[_join(global_root, f"cells/{cell}/CellInfo")] = bytes(
        topodata.CellInfo(server_address=cell_address, root=cell_root)
    )
    shards: dict[tuple[str, str], list[TabletInfo]] = {}
    for name, cells in topology.cells_aliases.items():
        records[_join(global_root, f"cells_aliases/{name}/CellsAlias")] = cells_alias_record(cells)
    for tablet in topology.tablets:
        shards.setdefault((tablet.keyspace, tablet.shard), []).append(tablet)
    srv_vschema = vschema.SrvVSchema()
    for name, info in sorted(topology.keyspaces.items()):
        records[_join(global_root, f"keyspaces/{name}/Keyspace")] = bytes(topodata.Keyspace())
        references = [
            topodata.ShardReference(name=shard, key_range=_range_message(shard))
            for shard in info.shards
        ]
        srv = topodata.SrvKeyspace(
            partitions=[
                topodata.SrvKeyspaceKeyspacePartition(
                    served_type=served, shard_references=references
                )
                for served in (TabletType.PRIMARY, TabletType.REPLICA, TabletType.RDONLY)
            ]
        )
        records[_join(cell_root, f"keyspaces/{name}/SrvKeyspace")] = bytes(srv)
        srv_vschema.keyspaces[name] = vschema.Keyspace(
            sharded=len(info.shards) > 1,
            tables={table: vschema.Table() for table in info.tables or ()},
        )
    for (keyspace, shard), tablets in sorted(shards.items()):
        primary = next((t for t in tablets if t.tablet_type == TabletType.PRIMARY), None)
        serving = topology.keyspaces.get(keyspace)
        records[_join(global_root, f"keyspaces/{keyspace}/shards/{shard}/Shard")] = bytes(
            topodata.Shard(
                primary_alias=_alias(primary) if primary is not None else None,
                key_range=_range_message(shard),
                is_primary_serving=serving is not None and shard in serving.shards,
            )
        )
    for tablet in topology.tablets:
        if tablet.address is None:
            raise ValueError(f"tablet {tablet.alias} has no address to publish")
        host, port = split_address(tablet.address)
        records[_join(cell_root, f"tablets/{tablet.alias}/Tablet")] = bytes(
            topodata.Tablet(
                alias=_alias(tablet),
                hostname=host,
                port_map={"grpc": port},
                keyspace=tablet.keyspace,
                shard=tablet.shard,
                key_range=_range_message(tablet.shard),
                type=tablet.tablet_type,
            )
        )
    records[_join(cell_root, "SrvVSchema")] = bytes(srv_vschema)
    return records
