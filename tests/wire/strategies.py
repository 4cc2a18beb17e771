"""Hypothesis strategies for the messages the gateway forwards."""

from __future__ import annotations

from hypothesis import strategies as st

from vsmux.proto import binlogdata, query

B = binlogdata
T = binlogdata.VEventType

int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
uint32 = st.integers(min_value=0, max_value=2**32 - 1)
names = st.text(max_size=12)
# Mostly short names, sometimes long enough for a two-byte length.
table_names = st.one_of(names, st.text(min_size=120, max_size=140))


@st.composite
def rows(draw: st.DrawFn) -> query.Row:
    values = draw(st.lists(st.one_of(st.none(), st.binary(max_size=20)), max_size=6))
    return query.Row(
        lengths=[-1 if v is None else len(v) for v in values],
        values=b"".join(v for v in values if v is not None),
    )


bitmaps = st.builds(B.RowChangeBitmap, count=int64, cols=st.binary(max_size=4))
row_changes = st.builds(
    B.RowChange,
    before=st.none() | rows(),
    after=st.none() | rows(),
    data_columns=st.none() | bitmaps,
)
fields = st.builds(
    query.Field,
    name=names,
    type=st.sampled_from(list(query.Type)),
    table=names,
    column_length=uint32,
    charset=uint32,
    flags=uint32,
    column_type=names,
)
row_events = st.builds(
    B.RowEvent,
    table_name=table_names,
    row_changes=st.lists(row_changes, max_size=3),
    keyspace=names,
    shard=names,
    flags=uint32,
    is_internal_table=st.booleans(),
)
field_events = st.builds(
    B.FieldEvent,
    table_name=table_names,
    fields=st.lists(fields, max_size=3),
    keyspace=names,
    shard=names,
    enum_set_string_values=st.booleans(),
)
query_results = st.builds(
    query.QueryResult, fields=st.lists(fields, max_size=2), rows=st.lists(rows(), max_size=2)
)
table_last_pks = st.builds(B.TableLastPk, table_name=names, lastpk=st.none() | query_results)
shard_gtids = st.builds(
    B.ShardGtid,
    keyspace=names,
    shard=names,
    gtid=names,
    table_p_ks=st.lists(table_last_pks, max_size=2),
)
vgtids = st.builds(B.VGtid, shard_gtids=st.lists(shard_gtids, max_size=3))


@st.composite
def events(draw: st.DrawFn) -> binlogdata.VEvent:
    """A VEvent of any type, with its type's payload and random header fields."""
    kind = draw(st.sampled_from(list(T)))
    event = B.VEvent(
        type=kind,
        timestamp=draw(int64),
        gtid=draw(names),
        current_time=draw(int64),
        keyspace=draw(names),
        shard=draw(names),
        sequence_number=draw(int64),
    )
    if kind == T.ROW:
        event.row_event = draw(row_events)
    elif kind == T.FIELD:
        event.field_event = draw(field_events)
    elif kind == T.VGTID:
        event.vgtid = draw(vgtids)
    elif kind in (T.DDL, T.OTHER):
        event.statement = draw(names)
    elif kind == T.LASTPK:
        event.last_p_k_event = B.LastPkEvent(
            table_last_p_k=draw(table_last_pks), completed=draw(st.booleans())
        )
    return event


# Events shaped like a tablet's: header fields only where Vitess sets them.
tablet_events = st.one_of(
    events(),
    st.builds(
        B.VEvent,
        type=st.just(T.ROW),
        timestamp=st.integers(min_value=0, max_value=2**33),
        row_event=row_events,
        current_time=int64,
        keyspace=names,
        shard=names,
    ),
    st.builds(
        B.VEvent,
        type=st.just(T.FIELD),
        field_event=field_events,
        keyspace=names,
        shard=names,
    ),
)
