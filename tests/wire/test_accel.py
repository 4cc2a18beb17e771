"""The C wire loops agree with the Python ones, on good and on broken bytes.

The Python split and packer are the reference. For every input, the C path
(what the gateway runs when the extension is built) must give the same frames
and the same response bodies, or raise FrameError where Python does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wire.strategies import events, tablet_events
from vsmux.proto import binlogdata, query
from vsmux.wire import Frame, FrameError, ResponsePacker, split_response
from vsmux.wire.accel import DISABLE_ENV, native
from vsmux.wire.frames import split_response_python, type_indexes, type_mask

needs_c = pytest.mark.skipif(
    native is None, reason=f"the C loops are off (not built, or {DISABLE_ENV} is set)"
)

B = binlogdata
T = binlogdata.VEventType
EXAMPLES = settings(max_examples=int(os.environ.get("VSMUX_WIRE_EXAMPLES", "150")), deadline=None)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except FrameError:
        return "FrameError", None


def frames_of(frames: list[Frame]) -> list[tuple[int, bytes]]:
    return [(f.type, f.raw) for f in frames]


def packed(
    frames: list[Frame], keyspace: str | None, max_bytes: int, use_native: bool, chunks: int = 1
) -> list[bytes]:
    packer = ResponsePacker(max_bytes, use_native=use_native)
    assert packer.native is use_native
    step = max(1, len(frames) // chunks)
    for start in range(0, len(frames), step):
        packer.add(frames[start : start + step], keyspace)
    events = packer.events
    bodies = packer.take()
    assert events == len(frames)
    assert packer.events == 0 and packer.pending_bytes == 0
    return bodies


def body_of(batch: list[binlogdata.VEvent]) -> bytes:
    return bytes(binlogdata.VStreamResponse(events=batch))


def mutate(data: bytes, where: int, byte: int) -> bytes:
    if not data:
        return data
    where %= len(data)
    return data[:where] + bytes([byte]) + data[where + 1 :]


@needs_c
@EXAMPLES
@given(st.lists(tablet_events, max_size=6))
def test_split_matches_python_on_tablet_responses(batch: list[binlogdata.VEvent]) -> None:
    body = body_of(batch)
    native_frames = split_response(body)
    python_frames = split_response_python(body)
    assert frames_of(native_frames) == frames_of(python_frames)
    for mine, reference in zip(native_frames, python_frames, strict=True):
        assert type(mine) is Frame
        assert mine._header is None  # headers stay lazy
        assert outcome(mine.header) == outcome(reference.header)


@needs_c
@settings(max_examples=3 * EXAMPLES.max_examples, deadline=None)
@given(
    st.lists(tablet_events, min_size=1, max_size=3),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=64),
)
def test_split_matches_python_on_broken_responses(
    batch: list[binlogdata.VEvent], where: int, byte: int, cut: int
) -> None:
    body = body_of(batch)
    for broken in (mutate(body, where, byte), body[: max(0, len(body) - cut)]):
        expected = outcome(lambda b=broken: frames_of(split_response_python(b)))
        assert outcome(lambda b=broken: frames_of(split_response(b))) == expected


@needs_c
@settings(max_examples=2 * EXAMPLES.max_examples, deadline=None)
@given(st.binary(max_size=200))
def test_split_matches_python_on_random_bytes(data: bytes) -> None:
    expected = outcome(lambda: frames_of(split_response_python(data)))
    assert outcome(lambda: frames_of(split_response(data))) == expected


@needs_c
@EXAMPLES
@given(
    st.lists(tablet_events, max_size=8),
    st.sampled_from([None, "", "commerce", "ks_" + "x" * 140]),
    st.integers(min_value=1, max_value=2000),
    st.integers(min_value=1, max_value=3),
)
def test_packing_matches_python(
    batch: list[binlogdata.VEvent], keyspace: str | None, max_bytes: int, chunks: int
) -> None:
    frames = split_response_python(body_of(batch))
    assert packed(frames, keyspace, max_bytes, True, chunks) == packed(
        frames, keyspace, max_bytes, False, chunks
    )


@needs_c
@settings(max_examples=3 * EXAMPLES.max_examples, deadline=None)
@given(
    st.one_of(events(), tablet_events),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=40),
    st.sampled_from([T.ROW, T.FIELD]),
)
def test_renaming_broken_events_matches_python(
    event: binlogdata.VEvent, where: int, byte: int, cut: int, kind: T
) -> None:
    raw = bytes(event)
    good = Frame(1, b"\x08\x01")
    for broken in (mutate(raw, where, byte), raw[: max(0, len(raw) - cut)], raw):
        # Typed ROW/FIELD whatever the bytes say, so that the rename walks them.
        frames = [good, Frame(int(kind), broken), good]
        expected = outcome(lambda f=frames: packed(f, "ks", 1 << 20, False))
        assert outcome(lambda f=frames: packed(f, "ks", 1 << 20, True)) == expected


@needs_c
def test_usual_events_are_renamed_in_c_and_the_rest_by_python() -> None:
    row = B.VEvent(
        type=T.ROW,
        timestamp=1700000000,
        row_event=B.RowEvent(
            table_name="customer",
            row_changes=[B.RowChange(after=query.Row(lengths=[1], values=b"1"))],
        ),
        keyspace="commerce",
        shard="-80",
    )
    field_without_name = B.VEvent(type=T.FIELD, field_event=B.FieldEvent(keyspace="commerce"))
    # A frame whose type is an enum member (not a plain int) takes the Python
    # path for that one event, and C carries on after it.
    odd_type = Frame(T.ROW, bytes(row))
    frames = [Frame.from_bytes(bytes(row)), Frame.from_bytes(bytes(field_without_name))]
    frames += [odd_type, Frame.from_bytes(bytes(row))]
    (body,) = packed(frames, "commerce", 1 << 20, True)
    decoded = binlogdata.VStreamResponse().parse(body).events
    names = [e.row_event.table_name if e.row_event else e.field_event.table_name for e in decoded]
    assert names == ["commerce.customer", "commerce.", "commerce.customer", "commerce.customer"]
    assert body == packed(frames, "commerce", 1 << 20, False)[0]


@needs_c
def test_an_event_larger_than_a_body_goes_alone() -> None:
    small = Frame(int(T.BEGIN), bytes(B.VEvent(type=T.BEGIN)))
    big = Frame(int(T.OTHER), bytes(B.VEvent(type=T.OTHER, statement="x" * 5000)))
    frames = [small, big, small, small]
    bodies = packed(frames, None, 1000, True)
    assert bodies == packed(frames, None, 1000, False)
    assert [len(split_response(b)) for b in bodies] == [1, 1, 2]


def test_the_extension_is_built_wherever_a_compiler_is() -> None:
    # The build is optional so that installs without a compiler succeed; this
    # keeps a broken build from silently falling back to the slower loops.
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        pytest.skip(f"{DISABLE_ENV} is set")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no Python headers here")
    from vsmux.wire import _accel  # noqa: F401  (ImportError: rerun `make` to rebuild)


@needs_c
def test_the_switch_turns_the_c_loops_off() -> None:
    code = (
        "from vsmux.wire import ResponsePacker; from vsmux.wire.accel import ACCELERATED;"
        "print(ACCELERATED, ResponsePacker(10).native)"
    )
    env = {**os.environ, DISABLE_ENV: "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]
    env[DISABLE_ENV] = "0"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "True"]


@needs_c
@EXAMPLES
@given(
    st.lists(st.integers(min_value=-3, max_value=80), max_size=30),
    st.sets(st.integers(min_value=0, max_value=63)),
)
def test_type_indexes_match_python(types: list[int], wanted: set[int]) -> None:
    frames = [Frame(t, b"") for t in types]
    frames.append(Frame(T.COMMIT, b""))  # an enum-typed frame, read through getattr
    mask = type_mask(wanted)
    python = [i for i, f in enumerate(frames) if 0 <= f.type < 64 and mask >> f.type & 1]
    assert type_indexes(frames, mask) == python
    assert python == [i for i, f in enumerate(frames) if f.type in wanted]


@needs_c
def test_type_indexes_survive_a_type_that_changes_the_list() -> None:
    frames: list[Any] = []

    class Meddler:
        @property
        def type(self) -> int:
            frames.clear()  # Python code run from inside the C loop
            return int(T.COMMIT)

    frames += [Frame(int(T.BEGIN), b""), Meddler(), Frame(int(T.COMMIT), b"")]
    assert type_indexes(frames, type_mask([T.COMMIT])) == [1]
