"""The request deadline as an asyncio timeout that becomes a 504 with a stable code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.errors import ApiError


@asynccontextmanager
async def within(deadline: float) -> AsyncIterator[None]:
    """Cancel the block at ``deadline`` (time.monotonic) and answer ``request_timeout``."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            yield
    except TimeoutError:
        raise ApiError(
            "request_timeout", "the request did not finish within its deadline"
        ) from None
