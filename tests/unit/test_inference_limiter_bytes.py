"""The inference limiter counts estimated decode bytes, not only requests (issue 14, finding 2)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import ApiError
from gateway.limits import InferenceLimiter
from gateway.metrics import GatewayMetrics

MIB = 1024 * 1024


def _limiter(budget: int = 100 * MIB, running: int = 4, queued: int = 8) -> InferenceLimiter:
    return InferenceLimiter(running, queued, GatewayMetrics(), memory_budget_bytes=budget)


def test_a_request_above_the_whole_budget_is_413() -> None:
    async def scenario() -> None:
        limiter = _limiter()
        with pytest.raises(ApiError) as caught:
            async with limiter.slot(101 * MIB):
                pass
        assert (caught.value.code, caught.value.status) == ("image_too_large", 413)

    asyncio.run(scenario())


def test_bytes_not_left_make_a_request_wait_then_run() -> None:
    async def scenario() -> list[str]:
        limiter = _limiter()
        order: list[str] = []
        release = asyncio.Event()

        async def big(name: str) -> None:
            async with limiter.slot(60 * MIB):
                order.append(f"{name} start")
                await release.wait()
                order.append(f"{name} end")

        first = asyncio.create_task(big("a"))
        await asyncio.sleep(0)
        second = asyncio.create_task(big("b"))  # 60 + 60 > 100: waits although slots are free
        await asyncio.sleep(0.01)
        assert order == ["a start"]
        assert limiter.reserved_bytes == 60 * MIB
        release.set()
        await asyncio.gather(first, second)
        assert limiter.reserved_bytes == 0
        return order

    assert asyncio.run(scenario()) == ["a start", "a end", "b start", "b end"]


def test_a_full_queue_is_503_with_retry_after() -> None:
    async def scenario() -> None:
        limiter = _limiter(queued=1)
        release = asyncio.Event()

        async def hold(cost: int) -> None:
            async with limiter.slot(cost):
                await release.wait()

        running = asyncio.create_task(hold(90 * MIB))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(hold(20 * MIB))
        await asyncio.sleep(0)
        with pytest.raises(ApiError) as caught:
            async with limiter.slot(20 * MIB):
                pass
        assert (caught.value.code, caught.value.retry_after_s) == ("overloaded", 1)
        release.set()
        await asyncio.gather(running, waiting)

    asyncio.run(scenario())


def test_small_requests_do_not_overtake_a_waiting_large_one() -> None:
    async def scenario() -> list[str]:
        limiter = _limiter()
        order: list[str] = []
        release = asyncio.Event()

        async def run(name: str, cost: int) -> None:
            async with limiter.slot(cost):
                order.append(name)
                await release.wait()

        tasks = [asyncio.create_task(run("small-1", 50 * MIB))]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(run("large", 80 * MIB)))
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(run("small-2", 10 * MIB)))  # would fit, but queues
        await asyncio.sleep(0.01)
        assert order == ["small-1"]
        release.set()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["small-1", "large", "small-2"]


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    async def scenario() -> None:
        limiter = _limiter()
        release = asyncio.Event()

        async def hold(cost: int) -> None:
            async with limiter.slot(cost):
                await release.wait()

        running = asyncio.create_task(hold(90 * MIB))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(hold(50 * MIB))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        await running
        assert limiter.reserved_bytes == 0
        async with limiter.slot(100 * MIB):  # the whole budget is free again
            pass

    asyncio.run(scenario())
