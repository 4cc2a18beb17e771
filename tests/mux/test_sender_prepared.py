"""The sender delivers a feed's prepared units exactly as it delivers plain ones."""

from __future__ import annotations

import pytest

from tests.mux.test_sender_coalescing import Recorder, book, parcel, run_sender
from vsmux.core.grouping import Unit
from vsmux.core.metrics import Metrics
from vsmux.core.prepared import PreparedUnit, prepare_unit
from vsmux.mux.items import Item, Parcel
from vsmux.wire import ResponsePacker


def prepared_like(plain: Parcel, max_bytes: int) -> Parcel:
    """``plain`` with every unit prepared for its keyspace, as a feed would."""
    units: list[Unit | PreparedUnit] = []
    for unit in plain.units:
        assert isinstance(unit, Unit)
        ready = prepare_unit(list(unit.frames), plain.key[0], max_bytes)
        assert ready is not None
        units.append(ready)
    return Parcel(plain.key, plain.labels, units, plain.tablet)


def parcels() -> list[Parcel]:
    return [parcel(shard, n, rows=n % 3) for n in range(1, 8) for shard in ("-40", "80-")]


@pytest.mark.parametrize("rename", [True, False])
@pytest.mark.parametrize("max_bytes", [1 << 20, 200])
async def test_prepared_and_plain_units_give_the_same_responses_and_positions(
    rename: bool, max_bytes: int
) -> None:
    plain_client, prepared_client = Recorder(), Recorder()
    plain_metrics, prepared_metrics = Metrics(), Metrics()
    plain_items: list[Item] = list(parcels())
    # Alternate prepared and plain parcels: their order must hold in one send.
    mixed: list[Item] = [
        prepared_like(p, max_bytes) if i % 2 == 0 else p for i, p in enumerate(parcels())
    ]
    plain = await run_sender(
        plain_items, plain_client, max_bytes=max_bytes, rename=rename, metrics=plain_metrics
    )
    prepared = await run_sender(
        mixed, prepared_client, max_bytes=max_bytes, rename=rename, metrics=prepared_metrics
    )
    assert prepared_client.bodies == plain_client.bodies
    assert prepared.book.vgtid() == plain.book.vgtid()
    assert prepared.book.vgtid() != book().vgtid()
    assert prepared_metrics.snapshot() == plain_metrics.snapshot()


def test_a_body_added_whole_keeps_its_place_between_packed_frames() -> None:
    for native in (True, False):
        packer = ResponsePacker(1 << 20, use_native=native)
        first, second = parcel("-40", 1), parcel("-40", 2)
        (one,) = first.units
        (two,) = second.units
        assert isinstance(one, Unit) and isinstance(two, Unit)
        packer.add_unit(one.frames, "ks")
        packer.add_body(b"\x0a\x00", 1)
        packer.add_unit(two.frames, "ks")
        assert packer.events == len(one.frames) + 1 + len(two.frames)
        expected = ResponsePacker(1 << 20, use_native=native)
        expected.add_unit(one.frames, "ks")
        (a,) = expected.take()
        expected.add_unit(two.frames, "ks")
        (b,) = expected.take()
        assert packer.pending_bytes == len(a) + 2 + len(b)
        assert packer.take() == [a, b"\x0a\x00", b]
        assert packer.pending_bytes == 0 and packer.take() == []
