"""``gateway.limits.in_threads``: decode threads end inside the limiter slot, even when the
request fails or its deadline cancels it (a thread cannot be stopped, its memory stays in use)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from gateway.limits import InferenceLimiter, in_threads
from gateway.metrics import GatewayMetrics

MIB = 1024 * 1024


def _blocked(release: threading.Event, value: int) -> Callable[[], int]:
    def call() -> int:
        assert release.wait(10)
        return value

    return call


def _fails() -> int:
    raise ValueError("corrupt eye")


def test_results_come_in_call_order() -> None:
    release = threading.Event()
    release.set()
    results = asyncio.run(in_threads(_blocked(release, 1), lambda: 2, _blocked(release, 3)))
    assert results == [1, 2, 3]


def test_a_deadline_releases_the_slot_only_after_the_thread_ends() -> None:
    async def scenario() -> None:
        limiter = InferenceLimiter(2, 2, GatewayMetrics(), memory_budget_bytes=100 * MIB)
        release = threading.Event()

        async def request() -> None:
            async with asyncio.timeout(0.05), limiter.slot(60 * MIB):
                await in_threads(_blocked(release, 1))

        task = asyncio.create_task(request())
        await asyncio.sleep(0.3)  # the deadline passed long ago; the thread is still decoding
        assert not task.done()
        assert limiter.reserved_bytes == 60 * MIB
        release.set()
        with pytest.raises(TimeoutError):
            await task
        assert limiter.reserved_bytes == 0

    asyncio.run(scenario())


def test_one_failed_eye_waits_for_the_other_before_raising() -> None:
    async def scenario() -> None:
        release = threading.Event()
        task = asyncio.create_task(in_threads(_fails, _blocked(release, 1)))
        await asyncio.sleep(0.2)
        assert not task.done()  # the first call failed at once; the second still runs
        release.set()
        with pytest.raises(ValueError, match="corrupt eye"):
            await task

    asyncio.run(scenario())
