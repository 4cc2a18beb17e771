"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio_asyncio


@pytest.fixture
async def aio_loop() -> AsyncIterator[None]:
    """An asyncio loop under Trio, as the gateway runs."""
    async with trio_asyncio.open_loop():
        yield
