"""The VGtid position book: VGTID events, LASTPK rules, copy, journal swaps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vsmux.core.positions import COPY_DONE, PositionBook
from vsmux.proto import binlogdata, query
from vsmux.wire import Frame, decode_event, frame_of
from vsmux.wire.varint import encode_varint

T = binlogdata.VEventType


def sg(ks: str, shard: str, gtid: str, *pks: str) -> binlogdata.ShardGtid:
    return binlogdata.ShardGtid(
        keyspace=ks,
        shard=shard,
        gtid=gtid,
        table_p_ks=[binlogdata.TableLastPk(table_name=t) for t in pks],
    )


def ev(kind: binlogdata.VEventType, **kw: object) -> Frame:
    return frame_of(binlogdata.VEvent(type=kind, **kw))  # type: ignore[arg-type]


def lastpk(table: str, pk: int, completed: bool = False) -> Frame:
    result = query.QueryResult(rows=[query.Row(lengths=[len(str(pk))], values=str(pk).encode())])
    return ev(
        T.LASTPK,
        keyspace="ks",
        shard="-80",
        last_p_k_event=binlogdata.LastPkEvent(
            table_last_p_k=binlogdata.TableLastPk(table_name=table, lastpk=result),
            completed=completed,
        ),
    )


def test_vgtid_bytes_match_the_generated_encoder() -> None:
    shards = [sg("ks", "-80", "MySQL56/a:1-5", "t1"), sg("ks", "80-", "")]
    book = PositionBook(shards)
    assert book.vgtid_bytes() == bytes(binlogdata.VGtid(shard_gtids=shards))
    frame = book.vgtid_frame("ks", "-80")
    want = binlogdata.VEvent(
        type=T.VGTID, vgtid=binlogdata.VGtid(shard_gtids=shards), keyspace="ks", shard="-80"
    )
    assert frame.raw == bytes(want)
    assert frame.type == T.VGTID


def test_gtid_becomes_a_vgtid_with_every_shard_position() -> None:
    book = PositionBook([sg("ks", "-80", "pos1"), sg("ks", "80-", "pos2")])
    frames = [ev(T.BEGIN), ev(T.GTID, gtid="pos3", keyspace="ks", shard="80-"), ev(T.COMMIT)]
    book.apply_controls(frames, [1], ("ks", "80-"))
    assert [f.type for f in frames] == [T.BEGIN, T.VGTID, T.COMMIT]
    vgtid_event = decode_event(frames[1])
    assert vgtid_event.keyspace == "ks" and vgtid_event.shard == "80-"
    assert vgtid_event.vgtid == binlogdata.VGtid(
        shard_gtids=[sg("ks", "-80", "pos1"), sg("ks", "80-", "pos3")]
    )
    # Cumulative: the next shard's GTID carries both latest positions.
    frames = [ev(T.GTID, gtid="pos4"), ev(T.COMMIT)]
    book.apply_controls(frames, [0], ("ks", "-80"))
    assert decode_event(frames[0]).vgtid == binlogdata.VGtid(
        shard_gtids=[sg("ks", "-80", "pos4"), sg("ks", "80-", "pos3")]
    )
    assert book.shard_gtid(("ks", "-80")) == sg("ks", "-80", "pos4")
    assert book.shard_gtid(("ks", "c0-")) is None


def test_lastpk_add_replace_remove() -> None:
    book = PositionBook([sg("ks", "-80", "")])
    key = ("ks", "-80")

    def apply(frame: Frame) -> binlogdata.VGtid:
        frames = [frame]
        book.apply_controls(frames, [0], key)
        assert frames[0].type == T.VGTID
        vgtid = decode_event(frames[0]).vgtid
        assert vgtid is not None
        return vgtid

    def tables(v: binlogdata.VGtid) -> list[tuple[str, bytes]]:
        return [
            (pk.table_name, pk.lastpk.rows[0].values if pk.lastpk else b"")
            for pk in v.shard_gtids[0].table_p_ks
        ]

    assert tables(apply(lastpk("t1", 10))) == [("t1", b"10")]  # add
    assert tables(apply(lastpk("t2", 3))) == [("t1", b"10"), ("t2", b"3")]  # add another
    assert tables(apply(lastpk("t1", 20))) == [("t1", b"20"), ("t2", b"3")]  # replace
    assert tables(apply(lastpk("t1", 20, completed=True))) == [("t2", b"3")]  # remove
    assert tables(apply(lastpk("t9", 1, completed=True))) == [("t2", b"3")]  # unknown+done
    resumed = book.shard_gtid(key)
    assert resumed is not None and [pk.table_name for pk in resumed.table_p_ks] == ["t2"]


def test_final_copy_completed_once_every_shard_copied() -> None:
    book = PositionBook([sg("ks", "-80", ""), sg("ks", "80-", "")])
    first = [ev(T.COPY_COMPLETED, keyspace="ks", shard="-80")]
    book.apply_controls(first, [0], ("ks", "-80"))
    assert len(first) == 1
    second = [ev(T.GTID, gtid="p"), ev(T.COPY_COMPLETED, keyspace="ks", shard="80-")]
    book.apply_controls(second, [0, 1], ("ks", "80-"))
    assert [f.type for f in second] == [T.VGTID, T.COPY_COMPLETED, T.COPY_COMPLETED]
    assert second[2] is COPY_DONE
    done = decode_event(second[2])
    assert done.keyspace == "" and done.shard == ""


def test_journal_one_to_many_replacement() -> None:
    book = PositionBook([sg("ks", "-20", "gtid01"), sg("ks", "20-", "gtid09")])
    book.replace([("ks", "-20")], [sg("ks", "-10", "gtid02"), sg("ks", "10-20", "gtid03")])
    assert book.vgtid() == binlogdata.VGtid(
        shard_gtids=[
            sg("ks", "20-", "gtid09"),
            sg("ks", "-10", "gtid02"),
            sg("ks", "10-20", "gtid03"),
        ]
    )


def test_journal_many_to_one_replacement() -> None:
    book = PositionBook([sg("ks", "-20", "g1"), sg("ks", "20-40", "g2")])
    book.replace([("ks", "-20"), ("ks", "20-40")], [sg("ks", "-40", "g3")])
    frames = [ev(T.GTID, gtid="g4"), ev(T.COMMIT)]
    book.apply_controls(frames, [0], ("ks", "-40"))
    assert decode_event(frames[0]).vgtid == binlogdata.VGtid(shard_gtids=[sg("ks", "-40", "g4")])


gtid_events = st.builds(
    lambda gtid, ts, ct, ks, shard, statement: binlogdata.VEvent(
        type=T.GTID,
        gtid=gtid,
        timestamp=ts,
        current_time=ct,
        keyspace=ks,
        shard=shard,
        statement=statement,
    ),
    st.text(min_size=1, max_size=300),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=2**62),
    st.sampled_from(["", "ks", "commerce"]),
    st.sampled_from(["", "-80", "80-"]),
    st.sampled_from(["", "", "", "x"]),  # mostly the usual layout
)


def _encoded(event: binlogdata.VEvent, current_time_last: bool) -> Frame:
    """``event`` as protobuf writes it, or with current_time last (as the simulator does)."""
    if not current_time_last or not event.current_time:
        return frame_of(event)
    without = binlogdata.VEvent.parse(bytes(event))
    without.current_time = 0
    return Frame(int(T.GTID), bytes(without) + b"\xa0\x01" + encode_varint(event.current_time))


@settings(max_examples=150, deadline=None)
@given(st.lists(gtid_events, min_size=1, max_size=6), st.booleans())
def test_gtid_to_vgtid_fast_path_agrees_with_the_header(
    events: list[binlogdata.VEvent], current_time_last: bool
) -> None:
    """Every GTID event, the first of its shape (header read) and later ones
    (the regex path, or the memo of what another book read), gives the VGTID
    event a full decode would give, in either field layout."""
    books = [PositionBook([sg("ks", "-80", "MySQL56/a:1"), sg("ks", "80-", "")]) for _ in range(2)]
    for event in events + events:
        for book in books:
            frames = [_encoded(event, current_time_last)]
            book.apply_controls(frames, [0], ("ks", "-80"))
            vgtid = decode_event(frames[0])
            assert vgtid == binlogdata.VEvent(
                type=T.VGTID,
                keyspace=event.keyspace,
                shard=event.shard,
                vgtid=binlogdata.VGtid(
                    shard_gtids=[sg("ks", "-80", event.gtid), sg("ks", "80-", "")]
                ),
            )
            assert bytes(vgtid) == frames[0].raw


# One operation on the book: move a shard, change its table positions, or
# swap shards as a journal would; the VGtid is read after each.
operations = st.one_of(
    st.tuples(st.just("gtid"), st.integers(0, 7), st.text(max_size=20)),
    st.tuples(st.just("lastpk"), st.integers(0, 7), st.sampled_from(["t1", "t2"]), st.booleans()),
    st.tuples(st.just("swap"), st.integers(0, 7), st.integers(1, 3)),
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.lists(operations, max_size=25), st.lists(st.booleans(), max_size=25))
def test_vgtid_follows_every_change_in_order(
    shards: int, ops: list[tuple[object, ...]], reads: list[bool]
) -> None:
    """Whatever was read before (cached joins), the VGtid equals a fresh encoding."""
    model = [sg("ks", f"s{i}", f"g{i}") for i in range(shards)]
    book = PositionBook(model)
    fresh = 100
    for step, op in enumerate(ops):
        index = int(op[1]) % len(model)  # type: ignore[call-overload]
        key = (model[index].keyspace, model[index].shard)
        if op[0] == "gtid":
            book.set_gtid(key, str(op[2]))
            model[index].gtid = str(op[2])
        elif op[0] == "lastpk":
            table, completed = str(op[2]), bool(op[3])
            book.apply_lastpk(
                key,
                binlogdata.LastPkEvent(
                    table_last_p_k=binlogdata.TableLastPk(table_name=table), completed=completed
                ),
            )
            pks = [pk for pk in model[index].table_p_ks if pk.table_name != table]
            if not completed:
                known = any(pk.table_name == table for pk in model[index].table_p_ks)
                pks = [
                    binlogdata.TableLastPk(table_name=pk.table_name)
                    for pk in model[index].table_p_ks
                ]
                if not known:
                    pks.append(binlogdata.TableLastPk(table_name=table))
            model[index].table_p_ks = pks
        else:
            new = [sg("ks", f"n{fresh + i}", f"h{fresh + i}") for i in range(int(op[2]))]  # type: ignore[call-overload]
            fresh += 10
            book.replace([key], new)
            model = [m for m in model if m is not model[index]] + new
        if step < len(reads) and reads[step]:
            book.vgtid_bytes()  # reading caches the join; later changes must update it
        assert book.vgtid_bytes() == bytes(binlogdata.VGtid(shard_gtids=model))
        frame = book.vgtid_frame("ks", "s0")
        assert decode_event(frame).vgtid == binlogdata.VGtid(shard_gtids=model)


def test_gtid_with_a_padded_length_still_gives_a_canonical_vgtid() -> None:
    book = PositionBook([sg("ks", "-80", "g0"), sg("ks", "80-", "")])
    usual = ev(T.GTID, gtid="g1", keyspace="ks", shard="-80")
    frames = [usual]
    book.apply_controls(frames, [0], ("ks", "-80"))  # learns the event's tail
    # The same event with gtid "g2" behind a two-byte length 0x82 0x00 (= 2, padded).
    padded_raw = usual.raw.replace(b"\x1a\x02g1", b"\x1a\x82\x00g2")
    assert padded_raw != usual.raw
    frames = [Frame(int(T.GTID), padded_raw)]
    book.apply_controls(frames, [0], ("ks", "-80"))
    event = decode_event(frames[0])
    assert event.vgtid == binlogdata.VGtid(shard_gtids=[sg("ks", "-80", "g2"), sg("ks", "80-", "")])
    assert bytes(event) == frames[0].raw  # what a fresh encoding gives: canonical lengths
