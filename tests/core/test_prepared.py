"""A unit prepared once gives each client the bytes packing it alone would give."""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.feed_events import T, event, field_event, position, row, transaction
from vsmux.core.prepared import PreparedUnit, prepare_unit, unprepared
from vsmux.proto import binlogdata
from vsmux.wire import Frame, ResponsePacker, frame_of

MAX = 64 * 1024


def vgtid_for(n: int, shards: int) -> Frame:
    """A VGTID event as a position book would make it: ``shards`` shard positions."""
    return frame_of(
        binlogdata.VEvent(
            type=binlogdata.VEventType.VGTID,
            vgtid=binlogdata.VGtid(
                shard_gtids=[
                    binlogdata.ShardGtid(keyspace="ks", shard=f"s{i}", gtid=position(n + i))
                    for i in range(shards)
                ]
            ),
            keyspace="ks",
            shard="s0",
        )
    )


def packed_alone(frames: list[Frame], keyspace: str | None, max_bytes: int) -> list[bytes]:
    packer = ResponsePacker(max_bytes)
    packer.add_unit(frames, keyspace)
    return packer.take()


tables = st.text(alphabet="abcdefghij_", min_size=1, max_size=30)
bodies = st.lists(
    st.one_of(
        st.builds(row, tables, st.binary(max_size=300)),
        st.builds(field_event, tables),
        st.builds(lambda: event(T.OTHER)),
    ),
    max_size=12,
)


@example(
    # Fits one response, but only just: the packer cuts before VGTID, COMMIT.
    body=[
        field_event("_"),
        row("___", bytes(5)),
        event(T.OTHER),
        row("______", bytes(5)),
        row("_" * 22, b""),
    ],
    keyspace="a" * 14,
    n=1,
    shards=1,
    max_bytes=256,
)
@given(
    body=bodies,
    keyspace=st.text(alphabet="abcdefghijklmnop-", min_size=1, max_size=40),
    n=st.integers(1, 10**9),
    shards=st.integers(1, 64),
    max_bytes=st.sampled_from([256, 1024, MAX]),
)
@settings(max_examples=int(os.environ.get("VSMUX_PROPERTY_EXAMPLES", "100")))
def test_a_prepared_unit_packs_to_the_same_bytes_as_the_unit_alone(
    body: list[Frame], keyspace: str, n: int, shards: int, max_bytes: int
) -> None:
    frames = transaction(n, *body)
    vgtid = vgtid_for(n, shards)
    prepared = prepare_unit(frames, keyspace, max_bytes)
    alone = packed_alone([*frames[:-2], vgtid, frames[-1]], keyspace, max_bytes)
    if prepared is None:
        # Only a unit that cannot fit one response is left unprepared.
        assert (
            len(packed_alone(frames, keyspace, max_bytes)) > 1
            or sum(len(f.raw) for f in frames) >= max_bytes - 64
        )
        return
    assert prepared.frames is frames  # nothing copied, nothing changed
    assert prepared.gtid is frames[-2]
    assert prepared.with_vgtid(vgtid) == [*frames[:-2], vgtid, frames[-1]]
    body_bytes = prepared.body(vgtid)
    if body_bytes is None:
        assert len(alone) > 1  # too large with this VGTID: the usual path splits it
    else:
        assert [body_bytes] == alone


def test_a_prepared_unit_serves_many_clients_with_their_own_vgtid() -> None:
    frames = transaction(7, field_event("t"), row("t", b"abc"), row("u"))
    prepared = prepare_unit(frames, "commerce", MAX)
    assert prepared is not None
    for shards in (1, 4, 16):
        vgtid = vgtid_for(7, shards)
        assert [prepared.body(vgtid)] == packed_alone(prepared.with_vgtid(vgtid), "commerce", MAX)


@pytest.mark.parametrize(
    ("name", "frames"),
    [
        ("no GTID (a ROLLBACK)", [event(T.BEGIN), row("t"), event(T.ROLLBACK)]),
        (
            "two GTIDs",
            [event(T.BEGIN), event(T.GTID, gtid=position(1)), *transaction(2, row("t"))[1:]],
        ),
        ("a LASTPK", [*transaction(3, row("t"))[:-1], event(T.LASTPK), event(T.COMMIT)]),
        ("a JOURNAL", [event(T.BEGIN), event(T.JOURNAL), *transaction(4)[1:]]),
        ("a COPY_COMPLETED", [*transaction(5)[:-1], event(T.COPY_COMPLETED)]),
    ],
)
def test_only_the_common_unit_is_prepared(name: str, frames: list[Frame]) -> None:
    assert prepare_unit(frames, "ks", MAX) is None, name


def test_a_unit_larger_than_one_response_is_not_prepared() -> None:
    frames = transaction(1, *(row("t", b"x" * 200) for _ in range(10)))
    assert prepare_unit(frames, "ks", 1024) is None
    assert prepare_unit(frames, "ks", MAX) is not None


def test_unprepared_gives_the_events_in_order() -> None:
    first = transaction(1, row("t"))
    second = transaction(2, row("u"))
    prepared = prepare_unit(second, "ks", MAX)
    assert isinstance(prepared, PreparedUnit)
    beat = [event(T.HEARTBEAT)]
    assert unprepared([first, prepared, beat]) == [*first, *second, *beat]
