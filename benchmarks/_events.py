"""Pre-encoded, vttablet-shaped VEvents for the replay tablet, and a raw gRPC message type.

A transaction is ``BEGIN, [FIELD,] ROW x N, GTID, COMMIT`` (FIELD only on the
first transaction of a stream), every event carrying ``timestamp`` (commit
seconds), ``current_time`` (ns), ``keyspace`` and ``shard``, the way a
vttablet sends them. ROW events (~300 bytes each) are encoded once with the
generated classes; the small BEGIN/GTID/COMMIT events are hand-encoded per
transaction (field order as protobuf writes it), so fresh GTIDs and commit
stamps cost microseconds. ``tests/test_bench_events.py`` checks the
hand-encoded bytes against the generated classes.

:class:`RawMessage` lets grpclib's stock protobuf codec send and receive
already-encoded bodies untouched: ``SerializeToString`` returns the bytes, and
``FromString`` returns the received bytes without decoding.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from vsmux.proto import binlogdata, query
from vsmux.wire.varint import encode_varint as varint
from vsmux.wire.varint import read_varint

__all__ = [
    "RawMessage",
    "ShardEvents",
    "count_events",
    "record",
    "varint",
]

GTID, BEGIN, COMMIT, ROW, FIELD, HEARTBEAT = 1, 2, 3, 12, 13, 14

TABLE = "orders"
COLUMNS: list[tuple[str, query.Type, str]] = [
    ("order_id", query.Type.INT64, "bigint"),
    ("customer_id", query.Type.INT64, "bigint"),
    ("sku", query.Type.VARBINARY, "varbinary(64)"),
    ("price", query.Type.DECIMAL, "decimal(10,2)"),
    ("note", query.Type.VARCHAR, "varchar(512)"),
]
ROWS_PER_TX = 10
# Target encoded size of one ROW event, as the issue asks for (~300 bytes).
ROW_EVENT_BYTES = 300


class RawMessage:
    """An already-encoded protobuf body, passed through grpclib's ProtoCodec as is."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> bytes:  # type: ignore[misc]
        # Received bodies stay bytes: no object, no decode.
        return data


def _len_field(tag: bytes, data: bytes) -> bytes:
    return tag + varint(len(data)) + data


def record(event: bytes) -> bytes:
    """``event`` as one ``repeated VEvent events = 1`` record of a VStreamResponse."""
    return b"\x0a" + varint(len(event)) + event


def count_events(body: bytes) -> int:
    """Events in an encoded VStreamResponse, found by skipping lengths (no decode)."""
    n = 0
    pos = 0
    end = len(body)
    while pos < end:
        length, pos = read_varint(body, pos + 1)  # after the key byte 0x0a
        pos += length
        n += 1
    return n


@dataclass
class ShardEvents:
    """Encoders for one shard's stream: its GTID sequence and pre-encoded rows."""

    keyspace: str
    shard: str
    seed: int = 0
    row_variants: int = 16

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}/{self.keyspace}/{self.shard}")
        self.server_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.gtid_seq = 0
        # Trailing fields every event of this shard carries: keyspace=22, shard=23.
        self._tail = _len_field(b"\xb2\x01", self.keyspace.encode()) + _len_field(
            b"\xba\x01", self.shard.encode()
        )
        self._rows = [self._row_event_body(rng, i) for i in range(self.row_variants)]
        self._field_body = bytes(
            binlogdata.FieldEvent(
                table_name=TABLE,
                fields=[
                    query.Field(
                        name=name,
                        type=typ,
                        table=TABLE,
                        org_table=TABLE,
                        database=f"vt_{self.keyspace}",
                        org_name=name,
                        column_length=20 if typ == query.Type.INT64 else 512,
                        charset=63 if typ != query.Type.VARCHAR else 255,
                        flags=(49667 if name == "order_id" else 32768 if typ < 1024 else 0),
                        column_type=ctype,
                    )
                    for name, typ, ctype in COLUMNS
                ],
                keyspace=self.keyspace,
                shard=self.shard,
            )
        )
        self._row_counter = 0
        self._gtid_prefix = f"MySQL56/{self.server_uuid}:1-".encode()
        self._stamp_cache: tuple[tuple[int, int], bytes, bytes, bytes, bytes] | None = None

    # ------------------------------------------------------------------ event encoders

    def _row_event_body(self, rng: random.Random, i: int) -> bytes:
        base = [
            str(rng.randrange(1, 10**12)).encode(),
            str(rng.randrange(1, 10**9)).encode(),
            rng.randbytes(12),
            f"{rng.randrange(0, 100000)}.{rng.randrange(0, 100):02d}".encode(),
        ]
        # Size the note so the whole encoded ROW event is ~ROW_EVENT_BYTES.
        note_len = 64
        for _ in range(4):
            values = [*base, (f"row {i} " * 200)[:note_len].encode()]
            body = bytes(
                binlogdata.RowEvent(
                    table_name=TABLE,
                    row_changes=[
                        binlogdata.RowChange(
                            after=query.Row(
                                lengths=[len(v) for v in values], values=b"".join(values)
                            )
                        )
                    ],
                    keyspace=self.keyspace,
                    shard=self.shard,
                )
            )
            event = self._finish(
                self._header(ROW, 1_700_000_000) + _len_field(b"\x2a", body), 1_700_000_000 * 10**9
            )
            size = len(event)
            note_len += ROW_EVENT_BYTES - size
        return body

    def _header(self, etype: int, ts: int) -> bytes:
        # type=1, timestamp=2 (always set: commit seconds).
        return b"\x08" + varint(etype) + b"\x10" + varint(ts)

    def _finish(self, head: bytes, ct_ns: int) -> bytes:
        # current_time=20 (tag 0xa0 0x01), then keyspace/shard.
        return head + b"\xa0\x01" + varint(ct_ns) + self._tail

    def simple(self, etype: int, ts: int, ct_ns: int) -> bytes:
        """BEGIN / COMMIT / HEARTBEAT event bytes."""
        return self._finish(self._header(etype, ts), ct_ns)

    def gtid(self, ts: int, ct_ns: int) -> bytes:
        """The next GTID event: ``MySQL56/<uuid>:1-N``."""
        self.gtid_seq += 1
        text = f"MySQL56/{self.server_uuid}:1-{self.gtid_seq}".encode()
        return self._finish(self._header(GTID, ts) + _len_field(b"\x1a", text), ct_ns)

    def position(self) -> str:
        return f"MySQL56/{self.server_uuid}:1-{self.gtid_seq}"

    def field(self, ts: int, ct_ns: int) -> bytes:
        return self._finish(self._header(FIELD, ts) + _len_field(b"\x32", self._field_body), ct_ns)

    def row(self, ts: int, ct_ns: int) -> bytes:
        body = self._rows[self._row_counter % len(self._rows)]
        self._row_counter += 1
        return self._finish(self._header(ROW, ts) + _len_field(b"\x2a", body), ct_ns)

    # ------------------------------------------------------------------ whole responses

    def rows_block(self, ts: int, ct_ns: int, rows: int = ROWS_PER_TX) -> bytes:
        """``rows`` ROW records, ready to splice into a response."""
        return b"".join(record(self.row(ts, ct_ns)) for _ in range(rows))

    def transaction(
        self,
        ts: int,
        ct_ns: int,
        rows_block: bytes,
        rows: int = ROWS_PER_TX,
        with_field: bool = False,
    ) -> tuple[bytes, int]:
        """One whole transaction as response records, and its event count."""
        parts = [record(self.simple(BEGIN, ts, ct_ns))]
        n = 3 + rows
        if with_field:
            parts.append(record(self.field(ts, ct_ns)))
            n += 1
        parts.append(rows_block)
        parts.append(record(self.gtid(ts, ct_ns)))
        parts.append(record(self.simple(COMMIT, ts, ct_ns)))
        return b"".join(parts), n

    def transactions(self, ts: int, ct_ns: int, rows_block: bytes, count: int) -> bytes:
        """``count`` whole transactions sharing one commit stamp (the flood fast path).

        Only the GTID differs between them, so BEGIN and COMMIT are encoded
        once and the GTID event is assembled from cached pieces.
        """
        if self._stamp_cache is None or self._stamp_cache[0] != (ts, ct_ns):
            self._stamp_cache = (
                (ts, ct_ns),
                record(self.simple(BEGIN, ts, ct_ns)),
                record(self.simple(COMMIT, ts, ct_ns)),
                self._header(GTID, ts) + b"\x1a",
                b"\xa0\x01" + varint(ct_ns) + self._tail,
            )
        _, begin, commit, head, tail = self._stamp_cache
        prefix = self._gtid_prefix
        parts = []
        seq = self.gtid_seq
        for _ in range(count):
            seq += 1
            text = prefix + str(seq).encode()
            event = head + varint(len(text)) + text + tail
            parts.append(begin)
            parts.append(rows_block)
            parts.append(b"\x0a" + varint(len(event)) + event)
            parts.append(commit)
        self.gtid_seq = seq
        return b"".join(parts)
