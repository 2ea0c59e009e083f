"""Backpressure: a bounded number of concurrent gradings and of their estimated decode memory,
with a bounded queue, and a body-size limit enforced while the body is being read."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ApiError
from gateway.metrics import GatewayMetrics

T = TypeVar("T")


async def in_threads(*calls: Callable[[], T]) -> list[T]:
    """Run ``calls`` in worker threads; their results in order. Returns or raises only once
    every thread has ended, even when a call fails or the caller is cancelled (a request
    deadline): a thread cannot be stopped, so the memory it decodes into stays inside the
    limiter slot held around this call instead of outliving the slot's release."""
    tasks = [asyncio.ensure_future(asyncio.to_thread(call)) for call in calls]
    try:
        return list(await asyncio.shield(asyncio.gather(*tasks)))
    finally:
        await asyncio.wait(tasks)  # at once when they are done; else until the threads end


class InferenceLimiter:
    """At most ``max_running`` gradings at once, together holding at most ``memory_budget_bytes``
    of estimated decode working set (fundus/budget.py); at most ``max_queued`` waiting; beyond:
    503 overloaded with Retry-After. A request whose estimate alone exceeds the budget could
    never run: 413 image_too_large. Waiters are admitted in arrival order, so a large request is
    not starved by small ones arriving after it.
    """

    def __init__(
        self,
        max_running: int,
        max_queued: int,
        metrics: GatewayMetrics,
        memory_budget_bytes: int | None = None,
    ) -> None:
        self._max_running = max_running
        self._max_queued = max_queued
        self._budget = memory_budget_bytes
        self._metrics = metrics
        self._running = 0
        self._reserved = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def reserved_bytes(self) -> int:
        """Estimated bytes held by the running gradings."""
        return self._reserved

    @asynccontextmanager
    async def slot(self, cost_bytes: int = 0) -> AsyncIterator[None]:
        """Hold one grading slot and ``cost_bytes`` of the memory budget for the block."""
        if self._budget is not None and cost_bytes > self._budget:
            raise ApiError(
                "image_too_large",
                f"decoding this request needs an estimated {cost_bytes} bytes, more than the "
                f"gateway's decode memory budget of {self._budget} bytes",
            )
        if self._waiting or not self._fits(cost_bytes):
            if len(self._waiting) >= self._max_queued:
                self._metrics.rejected.inc()
                raise ApiError(
                    "overloaded", "too many gradings in progress; retry shortly", retry_after_s=1
                )
            await self._wait_turn(cost_bytes)  # returns holding the slot
        else:
            self._take(cost_bytes)
        try:
            yield
        finally:
            self._release(cost_bytes)

    def _fits(self, cost_bytes: int) -> bool:
        if self._running >= self._max_running:
            return False
        return self._budget is None or self._reserved + cost_bytes <= self._budget

    def _take(self, cost_bytes: int) -> None:
        self._running += 1
        self._reserved += cost_bytes
        self._metrics.inferences_running.inc()

    def _release(self, cost_bytes: int) -> None:
        self._running -= 1
        self._reserved -= cost_bytes
        self._metrics.inferences_running.dec()
        self._wake()

    def _wake(self) -> None:
        """Grant the slot to waiters from the head of the line while they fit."""
        while self._waiting:
            cost_bytes, turn = self._waiting[0]
            if turn.done():  # cancelled while waiting
                self._waiting.popleft()
                continue
            if not self._fits(cost_bytes):
                break
            self._waiting.popleft()
            self._take(cost_bytes)
            turn.set_result(None)
        self._metrics.inferences_queued.set(len(self._waiting))

    async def _wait_turn(self, cost_bytes: int) -> None:
        entry = (cost_bytes, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        self._metrics.inferences_queued.set(len(self._waiting))
        try:
            await entry[1]
        except BaseException:
            if entry[1].done() and not entry[1].cancelled():
                self._release(cost_bytes)  # granted, then cancelled before it resumed
            else:
                with suppress(ValueError):
                    self._waiting.remove(entry)
                self._wake()  # the line's head may have changed
            raise


class BodyTooLarge(ApiError):
    """Raised from ``receive`` once the body passes the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__("payload_too_large", f"request body exceeds {limit} bytes")


class BodyReadTimeout(ApiError):
    """Raised from ``receive`` once the body has not arrived within its bound."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            "body_read_timeout", f"the request body did not arrive within {timeout_s:g} s"
        )


class BodySizeLimitMiddleware:
    """Refuse bodies above ``limit`` bytes: at once from Content-Length, else while reading;
    and bodies that do not arrive within ``read_timeout_s`` of the headers (408; a trickled
    body would hold a connection and a request slot for as long as the client likes)."""

    def __init__(self, app: ASGIApp, limit: int, read_timeout_s: float | None = None) -> None:
        self.app = app
        self.limit = limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_json(send, BodyTooLarge(self.limit))
            return
        received = 0
        body_done = False
        timed_out = False
        loop = asyncio.get_running_loop()
        deadline = None if self.read_timeout_s is None else loop.time() + self.read_timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done, timed_out
            if body_done or deadline is None:
                message = await receive()  # after the body: disconnect polling, unbounded
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    timed_out = True
                    raise BodyReadTimeout(self.read_timeout_s or 0.0) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
                body_done = not message.get("more_body", False)
            return message

        async def closing_send(message: Message) -> None:
            # After a body timeout the rest of the body may still come: do not keep the
            # connection for another request.
            if timed_out and message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"connection", b"close")],
                }
            await send(message)

        await self.app(scope, limited_receive, closing_send)


async def _send_json(send: Send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
