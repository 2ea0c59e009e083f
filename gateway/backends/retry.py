"""The one retry policy for calls to the model server: what is retried, how often, how long."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import grpc

from gateway.errors import ApiError

if TYPE_CHECKING:
    from gateway.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How one backend call is retried, always inside that call's deadline.

    Transport (every RPC of ``TFServingBackend``: status, metadata, model card, predict): only
    gRPC ``UNAVAILABLE`` is retried, as KServe's clients do: the server restarting, a pod moved
    by a rollout or a reset connection, where nothing was computed. ``attempts`` = 3 tries in
    all (``DRG_BACKEND_RETRY_ATTEMPTS``), paused ``backoff_s * 2**(n-1) * U(0.5, 1.5)`` after
    the n-th failure (``DRG_BACKEND_RETRY_BACKOFF_S`` = 0.05 s: 25-75 ms, then 50-150 ms, at
    most 225 ms in all). Each try gets only what is left of the call's timeout, itself
    ``min(DRG_BACKEND_TIMEOUT_S, what is left of the request deadline)``, and a pause that would
    end after it is not taken: a retried call never outlives the request. Every other code is
    answered at once (DEADLINE_EXCEEDED: the time is spent; RESOURCE_EXHAUSTED: more load;
    INVALID_ARGUMENT and the like: the same answer again). gRPC's own retries are off.

    Version gone (``GradingService.grade``): ``model_unavailable`` (NOT_FOUND or
    FAILED_PRECONDITION) from Predict means the pinned version was unloaded between resolve and
    predict (a model reload or rollout). The version is resolved afresh ``reresolves`` = 1 time
    and the prediction sent once more, if the new version preprocesses the same way; those two
    calls have their transport retries, under the same request deadline.
    """

    attempts: int = 3
    backoff_s: float = 0.05
    jitter: tuple[float, float] = (0.5, 1.5)
    retry_codes: frozenset[grpc.StatusCode] = field(
        default=frozenset({grpc.StatusCode.UNAVAILABLE})
    )
    reresolve_errors: frozenset[str] = frozenset({"model_unavailable"})
    reresolves: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy with the numbers that are settings (attempts, backoff)."""
        return cls(
            attempts=settings.backend_retry_attempts, backoff_s=settings.backend_retry_backoff_s
        )

    def pause_s(self, failures: int) -> float:
        """The jittered pause after ``failures`` failed tries (1 for the first)."""
        return self.backoff_s * 2.0 ** (failures - 1) * random.uniform(*self.jitter)

    @property
    def max_pauses_s(self) -> float:
        """The longest the pauses of one call can add up to (225 ms with the defaults)."""
        return sum(self.backoff_s * 2.0**n * self.jitter[1] for n in range(self.attempts - 1))

    def retries(self, code: grpc.StatusCode, failures: int) -> bool:
        """Whether a try that failed with ``code`` (the ``failures``-th failure) is retried."""
        return code in self.retry_codes and failures < self.attempts

    def reresolve(self, error_code: str, done: int) -> bool:
        """Whether a predict that failed with gateway error ``error_code`` re-resolves."""
        return error_code in self.reresolve_errors and done < self.reresolves

    async def call(self, send: Callable[[float], Awaitable[T]], timeout_s: float, name: str) -> T:
        """``send(remaining_s)`` until it returns, or raise its last ``AioRpcError``.

        ``backend_timeout`` when the deadline has passed before a try could start.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        failures = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ApiError("backend_timeout", f"{name}: no time left for the model server")
            try:
                return await send(remaining)
            except grpc.aio.AioRpcError as error:
                failures += 1
                if not self.retries(error.code(), failures):
                    raise
                pause = self.pause_s(failures)
                if loop.time() + pause >= deadline:
                    raise
            await asyncio.sleep(pause)
