"""Where protobuf bytes stop being a valid message, named as a field path.

protobuf's parser says only "Wire format was corrupt" or "String field had
bad UTF-8". When it rejects a request, :func:`find_defect` walks the same
bytes with the message's descriptor and names the first defect it finds:
``vgtid.shard_gtids[0].keyspace: not valid UTF-8``,
``tablet_type: a varint longer than 10 bytes``. It accepts what protobuf
accepts (unknown fields, known fields with another wire type, groups) and
so agrees with it about what is wrong.

Linear in the input: every byte is read once at the one nesting level that
owns it, and the walk stops after :data:`MAX_FIELDS` fields (a Python loop
per field; a 4 MiB request can hold two million). Nesting is bounded like
protobuf's (100 levels).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "MAX_FIELDS", "find_defect"]

#: protobuf's default recursion limit.
MAX_DEPTH = 100

#: Fields walked at most (about a quarter of a second of Python).
MAX_FIELDS = 100_000

_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5

# FieldDescriptor.TYPE_* numbers.
_TYPE_STRING = 9
_TYPE_GROUP = 10
_TYPE_MESSAGE = 11
_TYPE_BYTES = 12
_FIXED64_TYPES = frozenset({1, 6, 16})  # double, fixed64, sfixed64
_FIXED32_TYPES = frozenset({2, 7, 15})  # float, fixed32, sfixed32

_WIRE_NAMES = {0: "a varint", 1: "fixed64", 2: "length-delimited", 5: "fixed32"}


class _Defect(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)


def _read_varint(data: bytes, pos: int, end: int, where: str) -> tuple[int, int]:
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _Defect(where, f"truncated varint at byte {start}")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & ((1 << 64) - 1), pos
        shift += 7
        if shift >= 70:
            raise _Defect(where, f"a varint longer than 10 bytes at byte {start}")


def _expected_wire_type(field: Any) -> int:
    kind = field.type
    if kind in (_TYPE_STRING, _TYPE_BYTES, _TYPE_MESSAGE):
        return _LEN
    if kind == _TYPE_GROUP:
        return _SGROUP
    if kind in _FIXED64_TYPES:
        return _I64
    if kind in _FIXED32_TYPES:
        return _I32
    return _VARINT


class _OutOfBudget(Exception):
    pass


class _Walker:
    def __init__(self, data: bytes, max_fields: int) -> None:
        self.data = data
        self.budget = max_fields

    def message(self, descriptor: Any, pos: int, end: int, path: str, depth: int) -> None:
        """Walk one message's fields in ``data[pos:end]``."""
        if depth > MAX_DEPTH:
            raise _Defect(path, f"nested more than {MAX_DEPTH} levels deep")
        seen: dict[int, int] = {}
        while pos < end:
            tag_at = pos
            tag, pos = self.tag(pos, end, path)
            number, wire_type = tag >> 3, tag & 7
            field = descriptor.fields_by_number.get(number) if descriptor is not None else None
            where = self._name(path, field, number, seen)
            if wire_type == _EGROUP:
                raise _Defect(where, f"an end-group tag with no group open at byte {tag_at}")
            pos = self.value(field, wire_type, number, pos, end, where, depth)

    def tag(self, pos: int, end: int, where: str) -> tuple[int, int]:
        """A field's tag; counts against the field budget."""
        self.budget -= 1
        if self.budget < 0:
            raise _OutOfBudget
        tag, after = _read_varint(self.data, pos, end, where)
        if tag >> 32:  # field numbers are 29 bits; the tag is a uint32
            raise _Defect(where, f"a field number over 2**29 at byte {pos}")
        if tag >> 3 == 0:
            raise _Defect(where, f"field number 0 at byte {pos}")
        return tag, after

    def _name(self, path: str, field: Any, number: int, seen: dict[int, int]) -> str:
        name = field.name if field is not None else f"<field {number}>"
        if field is not None and field.is_repeated:
            index = seen.get(number, 0)
            seen[number] = index + 1
            name = f"{name}[{index}]"
        return f"{path}.{name}" if path else name

    def value(
        self, field: Any, wire_type: int, number: int, pos: int, end: int, where: str, depth: int
    ) -> int:
        """Skip (and check) one value; the position after it."""
        data = self.data
        if wire_type == _VARINT:
            return _read_varint(data, pos, end, where)[1]
        if wire_type in (_I64, _I32):
            size = 8 if wire_type == _I64 else 4
            if pos + size > end:
                raise _Defect(where, f"truncated {_WIRE_NAMES[wire_type]} value at byte {pos}")
            return pos + size
        if wire_type == _LEN:
            length, pos = _read_varint(data, pos, end, where)
            if length > end - pos:
                raise _Defect(where, f"a length of {length} bytes runs past the end of its message")
            if field is not None and _expected_wire_type(field) == _LEN:
                self.payload(field, pos, pos + length, where, depth)
            elif field is not None and field.is_repeated and not field.message_type:
                self.packed(field, pos, pos + length, where)
            return pos + length
        if wire_type == _SGROUP:
            return self.group(number, pos, end, where, depth + 1)
        raise _Defect(where, f"invalid wire type {wire_type}")

    def payload(self, field: Any, pos: int, end: int, where: str, depth: int) -> None:
        if field.type == _TYPE_MESSAGE:
            self.message(field.message_type, pos, end, where, depth + 1)
        elif field.type == _TYPE_STRING:
            try:
                self.data[pos:end].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Defect(
                    where, f"not valid UTF-8 (byte {pos + exc.start} of the request)"
                ) from None

    def packed(self, field: Any, pos: int, end: int, where: str) -> None:
        expected = _expected_wire_type(field)
        if expected == _VARINT:
            while pos < end:
                self.budget -= 1
                if self.budget < 0:
                    raise _OutOfBudget
                pos = _read_varint(self.data, pos, end, where)[1]
            return
        size = 8 if expected == _I64 else 4
        if (end - pos) % size:
            raise _Defect(where, f"packed values are not a multiple of {size} bytes")

    def group(self, number: int, pos: int, end: int, where: str, depth: int) -> int:
        """Skip an unknown group up to its end-group tag."""
        if depth > MAX_DEPTH:
            raise _Defect(where, f"nested more than {MAX_DEPTH} levels deep")
        while pos < end:
            tag_at = pos
            tag, pos = self.tag(pos, end, where)
            inner, wire_type = tag >> 3, tag & 7
            if wire_type == _EGROUP:
                if inner != number:
                    raise _Defect(where, f"group {number} closed as {inner} at byte {tag_at}")
                return pos
            pos = self.value(None, wire_type, inner, pos, end, where, depth)
        raise _Defect(where, "group not closed before the end of its message")


def find_defect(data: bytes, descriptor: Any, max_fields: int = MAX_FIELDS) -> str | None:
    """The first defect in ``data`` as a ``descriptor`` message, or None.

    ``descriptor`` is a protobuf ``Descriptor`` (``MessageClass.DESCRIPTOR``).
    None means no defect was found: the bytes parse, or the defect lies
    beyond the first ``max_fields`` fields (the walk stops there, so its cost
    is bounded whatever the input).
    """
    try:
        _Walker(data, max_fields).message(descriptor, 0, len(data), "", 0)
    except _Defect as defect:
        return str(defect)
    except _OutOfBudget:
        return None
    return None
