"""A unit too large for one response keeps its closing VGTID and COMMIT together.

Debezium's connector takes the last VGTID of each response as its position;
a response ending ``..., VGTID`` with the COMMIT in the next one would let it
store a position past a transaction it never saw end.
"""

from __future__ import annotations

import pytest

from vsmux.proto import binlogdata
from vsmux.wire import Frame, split_response
from vsmux.wire.accel import native
from vsmux.wire.pack import ResponsePacker

T = binlogdata.VEventType


def _event(kind: T, **fields: object) -> Frame:
    return Frame.from_bytes(bytes(binlogdata.VEvent(type=kind, **fields)))  # type: ignore[arg-type]


def _transaction(rows: int) -> list[Frame]:
    vgtid = binlogdata.VGtid(
        shard_gtids=[binlogdata.ShardGtid(keyspace="k", shard="0", gtid="x" * 30)]
    )
    return [
        _event(T.BEGIN),
        *(_event(T.ROW, row_event=binlogdata.RowEvent(table_name="t")) for _ in range(rows)),
        _event(T.VGTID, vgtid=vgtid),
        _event(T.COMMIT),
    ]


@pytest.mark.parametrize("use_native", [False, pytest.param(True, id="C")])
@pytest.mark.parametrize("rows", range(1, 40))
def test_vgtid_and_commit_share_a_response(use_native: bool, rows: int) -> None:
    if use_native and native is None:
        pytest.skip("the C loops are off (not built, or VSMUX_PURE_PYTHON is set)")
    unit = _transaction(rows)
    packer = ResponsePacker(200, use_native=use_native)
    packer.add_unit(unit)
    bodies = packer.take()
    kinds = [[frame.type for frame in split_response(body)] for body in bodies]
    assert [kind for body in kinds for kind in body] == [frame.type for frame in unit]
    assert all(len(body) <= 200 for body in bodies)
    for body in kinds:
        if T.VGTID in body:
            assert body[-2:] == [T.VGTID, T.COMMIT], kinds
