"""Delivery worker: an asyncio task per replica that drains the shared store to the PACS.

The SRs are one per study (``studies``), plus per-instance SRs the release before studies
left pending. Each replica claims one due SR at a time with a lease (``ResultStore.claim``),
sends it, and marks it delivered or failed; replicas never send the same SR while none
crashes (the lease outlives the STOW-RS timeout). A replica that dies keeps its lease until
it expires; then any other replica claims and sends the SR (the PACS takes the resend as the
same instance).

Every pending row is retried until the PACS accepts it; nothing is ever dropped. A failure that
concerns only one SR (the PACS refused it) postpones that row with exponential backoff and
jitter; a failure of the PACS as a whole (unreachable, 5xx, auth) or of the store pauses the
worker with the same backoff so an outage is not hammered. A replica wakes at once for its own
intake (``notify``) and every ``DRG_PACS_POLL_S`` for the others' (or when a lease ends). Once
an hour it deletes delivered results older than ``DRG_RESULTS_RETENTION_DAYS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from typing import TYPE_CHECKING

from gateway.metrics import GatewayMetrics
from gateway.store.results import Delivery, ResultStore, StoreUnavailable

if TYPE_CHECKING:
    from gateway.pacs.client import StowClient

logger = logging.getLogger("gateway.pacs")
PURGE_EVERY_S = 3600.0


def backoff_s(failures: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": half fixed, half random."""
    ceiling = min(max_s, initial_s * 2 ** max(0, failures - 1))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


def replica_name() -> str:
    """This process's lease owner: host (the pod name in Kubernetes), pid and a random tag."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryWorker:
    """Sends due SRs one by one; woken by ``notify`` when this replica stores a new result."""

    def __init__(
        self,
        store: ResultStore,
        client: StowClient,
        metrics: GatewayMetrics,
        *,
        initial_backoff_s: float,
        max_backoff_s: float,
        lease_s: float,
        poll_s: float,
        retention_s: float,
    ) -> None:
        self.owner = replica_name()
        self._store = store
        self._client = client
        self._metrics = metrics
        self._initial = initial_backoff_s
        self._max = max_backoff_s
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._retention_s = retention_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._outage_failures = 0
        self._next_purge = 0.0

    def start(self) -> None:
        """Start the task (pending rows from before a restart are due at once)."""
        self._task = asyncio.create_task(self._run(), name="pacs-delivery")

    def notify(self) -> None:
        """A new result is in the store."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the task and give back this replica's leases (another replica, or the next
        start, sends an SR that was in flight)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreUnavailable):  # the leases then simply expire
            await asyncio.to_thread(self._store.release, self.owner)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                pause = await self._drain()
                await self._housekeeping()
                self._metrics.store_up.set(1)
            except StoreUnavailable as error:
                self._metrics.store_up.set(0)
                self._outage_failures += 1
                logger.warning(
                    "results store unavailable; delivery paused",
                    extra={"event": "store_unavailable", "error_code": str(error)[:120]},
                )
                pause = backoff_s(self._outage_failures, self._initial, self._max, self._rng)
            except Exception as error:  # never die: the store must keep draining
                logger.error(
                    "PACS delivery loop failed",
                    exc_info=error,
                    extra={"event": "pacs_worker_error"},
                )
                pause = backoff_s(1, self._initial, self._max, self._rng)
            if pause is not None:
                await asyncio.sleep(pause)  # outage: notifications wait too
                continue
            delay = await self._idle_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _idle_delay(self) -> float:
        try:
            next_due = await asyncio.to_thread(self._store.next_due_at)
        except StoreUnavailable:
            return self._poll_s
        if next_due is None:
            return self._poll_s
        return min(self._poll_s, max(0.0, next_due - time.time()))

    async def _drain(self) -> float | None:
        """Send every claimable row; return a pause in seconds when the PACS is unavailable."""
        self._wake.clear()
        while True:
            claimed = await asyncio.to_thread(
                self._store.claim, self.owner, time.time(), self._lease_s
            )
            if not claimed:
                return None
            for delivery in claimed:
                pause = await self._deliver(delivery)
                if pause is not None:
                    return pause

    async def _deliver(self, delivery: Delivery) -> float | None:
        started = time.perf_counter()
        outcome = await self._client.store(delivery.sr_sop_uid, delivery.sr_bytes)
        self._metrics.pacs_delivery_duration.observe(time.perf_counter() - started)
        if outcome.delivered:
            self._outage_failures = 0
            # Count the PACS answer before the store write, so a stop() cancelling the await
            # below cannot lose it (the row stays pending and is sent again: harmless).
            self._metrics.pacs_deliveries.labels(result="delivered").inc()
            await asyncio.to_thread(
                self._store.mark_delivered, delivery.key, delivery.sr_sop_uid, delivery.kind
            )
            logger.info(
                "SR delivered to the PACS",
                extra={"event": "pacs_delivered", "status": outcome.detail, "kind": delivery.kind},
            )
            return None
        attempts = delivery.attempts + 1
        row_delay = backoff_s(attempts, self._initial, self._max, self._rng)
        result = "unavailable" if outcome.pause_all else "refused"
        self._metrics.pacs_deliveries.labels(result=result).inc()
        await asyncio.to_thread(
            self._store.mark_failed,
            self.owner,
            delivery.key,
            delivery.sr_sop_uid,
            outcome.detail,
            time.time() + row_delay,
            delivery.kind,
        )
        logger.warning(
            "SR delivery failed; will retry",
            extra={"event": f"pacs_{result}", "error_code": outcome.detail},
        )
        if outcome.pause_all:
            self._outage_failures += 1
            return backoff_s(self._outage_failures, self._initial, self._max, self._rng)
        return None

    async def _housekeeping(self) -> None:
        """Gauges every loop; the retention purge once an hour."""
        pending, oldest = await asyncio.to_thread(self._store.stats)
        self._metrics.pacs_outbox_pending.set(pending)
        self._metrics.pacs_outbox_oldest_age.set(0 if oldest is None else time.time() - oldest)
        now = time.time()
        if now < self._next_purge:
            return
        purged = await asyncio.to_thread(self._store.purge, now - self._retention_s)
        self._next_purge = now + PURGE_EVERY_S
        if purged:
            self._metrics.results_purged.inc(purged)
            logger.info(
                "delivered results past retention deleted",
                extra={"event": "results_purged", "images": purged},
            )
