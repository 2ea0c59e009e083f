"""Delivery worker: an asyncio task that drains the outbox to the PACS with capped backoff.

Every pending row is retried until the PACS accepts it; nothing is ever dropped. A failure
that concerns only one SR (the PACS refused it) postpones that row with exponential backoff
and jitter; a failure that concerns the PACS as a whole (unreachable, 5xx, auth) pauses the
worker with the same backoff so an outage is not hammered. Rows left pending at shutdown are
sent after the next start (the SR UIDs are deterministic, so a resend is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING

from gateway.metrics import GatewayMetrics
from gateway.pacs.outbox import Delivery, Outbox

if TYPE_CHECKING:
    from gateway.pacs.client import StowClient

logger = logging.getLogger("gateway.pacs")
BATCH = 16
IDLE_POLL_S = 60.0
"""Longest sleep when nothing is pending (a notify wakes the worker at once)."""


def backoff_s(failures: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": half fixed, half random."""
    ceiling = min(max_s, initial_s * 2 ** max(0, failures - 1))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


class DeliveryWorker:
    """Sends due SRs one by one; woken by ``notify`` when the intake stores a new result."""

    def __init__(
        self,
        outbox: Outbox,
        client: StowClient,
        metrics: GatewayMetrics,
        *,
        initial_backoff_s: float,
        max_backoff_s: float,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._metrics = metrics
        self._initial = initial_backoff_s
        self._max = max_backoff_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._outage_failures = 0

    def start(self) -> None:
        """Start the task (pending rows from before a restart are due at once)."""
        self._task = asyncio.create_task(self._run(), name="pacs-delivery")

    def notify(self) -> None:
        """A new result is in the outbox."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the task; an SR in flight stays pending and is resent after the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                pause = await self._drain()
            except Exception as error:  # never die: the outbox must keep draining
                logger.error(
                    "PACS delivery loop failed",
                    exc_info=error,
                    extra={"event": "pacs_worker_error"},
                )
                pause = backoff_s(1, self._initial, self._max, self._rng)
            await self._update_gauges()
            if pause is not None:
                await asyncio.sleep(pause)  # PACS outage: notifications wait too
                continue
            next_due = await asyncio.to_thread(self._outbox.next_due_at)
            delay = IDLE_POLL_S if next_due is None else max(0.0, next_due - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(delay, IDLE_POLL_S))

    async def _drain(self) -> float | None:
        """Send every due row; return a pause in seconds when the PACS is unavailable."""
        self._wake.clear()
        while True:
            batch = await asyncio.to_thread(self._outbox.due, time.time(), BATCH)
            if not batch:
                return None
            for delivery in batch:
                pause = await self._deliver(delivery)
                if pause is not None:
                    return pause

    async def _deliver(self, delivery: Delivery) -> float | None:
        started = time.perf_counter()
        outcome = await self._client.store(delivery.sr_sop_uid, delivery.sr_bytes)
        self._metrics.pacs_delivery_duration.observe(time.perf_counter() - started)
        if outcome.delivered:
            self._outage_failures = 0
            # Count the PACS answer before the outbox write, so a stop() cancelling the await
            # below cannot lose it.
            self._metrics.pacs_deliveries.labels(result="delivered").inc()
            await asyncio.to_thread(
                self._outbox.mark_delivered, delivery.source_sop_uid, delivery.sr_sop_uid
            )
            logger.info(
                "SR delivered to the PACS",
                extra={"event": "pacs_delivered", "status": outcome.detail},
            )
            return None
        attempts = delivery.attempts + 1
        row_delay = backoff_s(attempts, self._initial, self._max, self._rng)
        result = "unavailable" if outcome.pause_all else "refused"
        self._metrics.pacs_deliveries.labels(result=result).inc()
        await asyncio.to_thread(
            self._outbox.mark_failed,
            delivery.source_sop_uid,
            delivery.sr_sop_uid,
            outcome.detail,
            time.time() + row_delay,
        )
        logger.warning(
            "SR delivery failed; will retry",
            extra={"event": f"pacs_{result}", "error_code": outcome.detail},
        )
        if outcome.pause_all:
            self._outage_failures += 1
            return backoff_s(self._outage_failures, self._initial, self._max, self._rng)
        return None

    async def _update_gauges(self) -> None:
        pending, oldest = await asyncio.to_thread(self._outbox.stats)
        self._metrics.pacs_outbox_pending.set(pending)
        self._metrics.pacs_outbox_oldest_age.set(0 if oldest is None else time.time() - oldest)
