"""Backpressure: a bounded number of concurrent gradings with a bounded queue, and a body-size
limit enforced while the body is being read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ApiError
from gateway.metrics import GatewayMetrics


class InferenceLimiter:
    """At most ``max_running`` gradings at once; at most ``max_queued`` waiting; beyond: 503."""

    def __init__(self, max_running: int, max_queued: int, metrics: GatewayMetrics) -> None:
        self._semaphore = asyncio.Semaphore(max_running)
        self._max_queued = max_queued
        self._queued = 0
        self._metrics = metrics

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one grading slot for the duration of the block."""
        if self._semaphore.locked() and self._queued >= self._max_queued:
            self._metrics.rejected.inc()
            raise ApiError(
                "overloaded", "too many gradings in progress; retry shortly", retry_after_s=1
            )
        self._queued += 1
        self._metrics.inferences_queued.set(self._queued)
        try:
            await self._semaphore.acquire()
        finally:
            self._queued -= 1
            self._metrics.inferences_queued.set(self._queued)
        self._metrics.inferences_running.inc()
        try:
            yield
        finally:
            self._metrics.inferences_running.dec()
            self._semaphore.release()


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
