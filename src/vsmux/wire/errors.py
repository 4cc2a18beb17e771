"""The one error the wire layer raises."""

from __future__ import annotations

__all__ = ["FrameError"]


class FrameError(ValueError):
    """Bytes that are not a well-formed VEvent / VStreamResponse.

    Every malformed input the wire layer meets ends as this exception, never an
    ``IndexError`` or a hang; the layers above translate it into a
    :class:`vsmux.errors.VStreamError` that names the tablet.
    """
