"""The cheaper DATA frame repr prints exactly what hyperframe's own does."""

from hyperframe.frame import DataFrame, Frame
from hypothesis import given
from hypothesis import strategies as st

from vsmux.transport import _frame_repr as frame_repr


@given(data=st.binary(max_size=64), pad_length=st.integers(0, 20), padded=st.booleans())
def test_repr_text_is_unchanged(data: bytes, pad_length: int, padded: bool) -> None:
    frame = DataFrame(1, data)
    if padded:
        frame.flags.add("PADDED")
        frame.pad_length = pad_length
    original = Frame._body_repr(frame)  # hyperframe's generic body repr
    frame_repr.install()
    assert repr(frame).endswith(original)
    assert frame._body_repr() == original
