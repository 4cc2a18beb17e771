"""Builders for VStream events used by the client tests."""

from __future__ import annotations

from collections.abc import Sequence

from vsmux.proto import binlogdata, query, vtgate

E = binlogdata.VEventType
KS = "commerce"


def row(values: Sequence[bytes | None]) -> query.Row:
    """A query.Row in the wire encoding: -1 for NULL, lengths of the rest."""
    return query.Row(
        lengths=[-1 if v is None else len(v) for v in values],
        values=b"".join(v for v in values if v is not None),
    )


def fields(*columns: tuple[str, query.Type]) -> list[query.Field]:
    return [query.Field(name=name, type=type_) for name, type_ in columns]


CUSTOMER = fields(("id", query.Type.INT64), ("email", query.Type.VARCHAR))


def field_event(
    table: str = "customer", shard: str = "-80", cols: list[query.Field] | None = None
) -> binlogdata.VEvent:
    return binlogdata.VEvent(
        type=E.FIELD,
        keyspace=KS,
        shard=shard,
        field_event=binlogdata.FieldEvent(
            table_name=f"{KS}.{table}",
            fields=CUSTOMER if cols is None else cols,
            keyspace=KS,
            shard=shard,
        ),
    )


def row_event(
    table: str = "customer",
    shard: str = "-80",
    before: Sequence[bytes | None] | None = None,
    after: Sequence[bytes | None] | None = None,
) -> binlogdata.VEvent:
    change = binlogdata.RowChange(
        before=row(before) if before is not None else None,
        after=row(after) if after is not None else None,
    )
    return binlogdata.VEvent(
        type=E.ROW,
        keyspace=KS,
        shard=shard,
        row_event=binlogdata.RowEvent(
            table_name=f"{KS}.{table}", row_changes=[change], keyspace=KS, shard=shard
        ),
    )


def vgtid(*entries: tuple[str, str]) -> binlogdata.VGtid:
    """A VGtid of (shard, gtid) pairs in keyspace KS."""
    return binlogdata.VGtid(
        shard_gtids=[binlogdata.ShardGtid(keyspace=KS, shard=s, gtid=g) for s, g in entries]
    )


def vgtid_event(shard: str, *entries: tuple[str, str]) -> binlogdata.VEvent:
    return binlogdata.VEvent(type=E.VGTID, keyspace=KS, shard=shard, vgtid=vgtid(*entries))


def simple(type_: binlogdata.VEventType, shard: str = "-80", ts: int = 0) -> binlogdata.VEvent:
    return binlogdata.VEvent(type=type_, keyspace=KS, shard=shard, timestamp=ts)


def transaction(
    n: int, shard: str = "-80", rows: int = 1, ts: int = 1_700_000_000, with_field: bool = False
) -> list[binlogdata.VEvent]:
    """Transaction number ``n`` on a shard: BEGIN, rows inserting ids, VGTID, COMMIT.

    Its position is gtid ``MySQL56/u:1-n`` on that shard.
    """
    events = [simple(E.BEGIN, shard, ts)]
    if with_field:
        events.append(field_event(shard=shard))
    for i in range(rows):
        key = str(n * 100 + i).encode()
        events.append(row_event(shard=shard, after=[key, b"c%d@x" % (n * 100 + i)]))
    events.append(vgtid_event(shard, (shard, f"MySQL56/u:1-{n}")))
    events.append(simple(E.COMMIT, shard, ts))
    return events


def response(events: Sequence[binlogdata.VEvent]) -> vtgate.VStreamResponse:
    return vtgate.VStreamResponse(events=list(events))


def copy_block(
    shard: str,
    gtid: str,
    keys: Sequence[int],
    with_field: bool = False,
    table: str = "customer",
) -> list[binlogdata.VEvent]:
    """A copy batch as a gateway sends it: BEGIN, [FIELD], inserted ROWs, VGTID, COMMIT.

    The VGTID keeps the shard's GTID set (a copy does not read the binlog) and
    carries the table's last copied key in ``table_p_ks``.
    """
    events = [simple(E.BEGIN, shard)]
    if with_field:
        events.append(field_event(table=table, shard=shard))
    for key in keys:
        events.append(row_event(table=table, shard=shard, after=[b"%d" % key, b"k%d@x" % key]))
    lastpk = query.QueryResult(
        fields=[query.Field(name="id", type=query.Type.INT64)], rows=[row([b"%d" % keys[-1]])]
    )
    position = binlogdata.VGtid(
        shard_gtids=[
            binlogdata.ShardGtid(
                keyspace=KS,
                shard=shard,
                gtid=gtid,
                table_p_ks=[binlogdata.TableLastPk(table_name=table, lastpk=lastpk)],
            )
        ]
    )
    events.append(binlogdata.VEvent(type=E.VGTID, keyspace=KS, shard=shard, vgtid=position))
    events.append(simple(E.COMMIT, shard))
    return events
