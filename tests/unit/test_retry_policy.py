"""The one retry policy for backend calls: which codes retry, how many tries, the time bound."""

from __future__ import annotations

import asyncio
import socket
import time

import grpc
import pytest

from gateway.backends.base import ModelSelector
from gateway.backends.retry import RetryPolicy
from gateway.backends.tfserving import TFServingBackend
from gateway.errors import ApiError
from gateway.metrics import GatewayMetrics
from gateway.settings import Settings


class Script:
    """A backend RPC that fails with the given codes in turn, then answers "ok"."""

    def __init__(self, *codes: grpc.StatusCode) -> None:
        self.codes = list(codes)
        self.remaining: list[float] = []
        self.at: list[float] = []

    async def __call__(self, remaining_s: float) -> str:
        self.remaining.append(remaining_s)
        self.at.append(time.monotonic())
        if self.codes:
            raise grpc.aio.AioRpcError(self.codes.pop(0), None, None, details="scripted")
        return "ok"


def call(policy: RetryPolicy, script: Script, timeout_s: float = 5.0) -> str:
    return asyncio.run(policy.call(script, timeout_s, "predict"))


def test_defaults_are_the_documented_numbers() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.backoff_s, policy.reresolves) == (3, 0.05, 1)
    assert policy.max_pauses_s == pytest.approx(0.225)  # (50 + 100 ms) x 1.5 jitter
    settings = Settings(auth="disabled", environment="development")
    assert RetryPolicy.from_settings(settings) == policy
    tuned = settings.model_copy(update={"backend_retry_attempts": 5, "backend_retry_backoff_s": 0})
    assert RetryPolicy.from_settings(tuned) == RetryPolicy(attempts=5, backoff_s=0)


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_only_unavailable_is_retried(code: grpc.StatusCode) -> None:
    assert RetryPolicy().retries(code, 1) is (code == grpc.StatusCode.UNAVAILABLE)


def test_unavailable_is_tried_attempts_times_then_raised() -> None:
    policy = RetryPolicy(backoff_s=0.001)
    script = Script(*[grpc.StatusCode.UNAVAILABLE] * 5)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        call(policy, script)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(script.remaining) == 3


def test_a_retry_that_succeeds_returns_the_answer() -> None:
    script = Script(grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    assert call(RetryPolicy(backoff_s=0.001), script) == "ok"
    assert len(script.remaining) == 3


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INTERNAL,
    ],
    ids=lambda c: c.name,
)
def test_other_codes_are_answered_at_once(code: grpc.StatusCode) -> None:
    script = Script(code)
    with pytest.raises(grpc.aio.AioRpcError):
        call(RetryPolicy(), script)
    assert len(script.remaining) == 1


def test_pauses_grow_and_stay_within_the_jitter() -> None:
    policy = RetryPolicy()
    for failures, base in ((1, 0.05), (2, 0.10)):
        pauses = [policy.pause_s(failures) for _ in range(200)]
        assert base * 0.5 <= min(pauses) and max(pauses) <= base * 1.5


def test_every_try_gets_only_what_is_left_of_the_deadline() -> None:
    policy = RetryPolicy(attempts=10, backoff_s=0.02, jitter=(1.0, 1.0))
    script = Script(*[grpc.StatusCode.UNAVAILABLE] * 10)
    began = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):
        call(policy, script, timeout_s=0.5)
    elapsed = time.monotonic() - began
    # 20 + 40 + 80 + 160 ms fit in 0.5 s; the next pause (320 ms) would not: 5 tries, no sleep
    # past the deadline.
    assert len(script.remaining) == 5
    assert elapsed < 0.5
    assert script.remaining == sorted(script.remaining, reverse=True)
    assert all(0 < r <= 0.5 for r in script.remaining)


def test_a_pause_longer_than_the_time_left_is_not_taken() -> None:
    script = Script(grpc.StatusCode.UNAVAILABLE)
    began = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):
        call(RetryPolicy(backoff_s=1.0), script, timeout_s=0.2)
    assert time.monotonic() - began < 0.2
    assert len(script.remaining) == 1


def test_no_time_left_is_a_backend_timeout() -> None:
    script = Script()
    with pytest.raises(ApiError) as raised:
        call(RetryPolicy(), script, timeout_s=0)
    assert raised.value.code == "backend_timeout"
    assert script.remaining == []


def test_a_version_gone_re_resolves_once() -> None:
    policy = RetryPolicy()
    assert policy.reresolve("model_unavailable", 0)
    assert not policy.reresolve("model_unavailable", 1)
    for code in ("backend_unavailable", "backend_timeout", "backend_rejected_input"):
        assert not policy.reresolve(code, 0)


def test_tfserving_backend_retries_a_closed_port_three_times() -> None:
    """A real gRPC channel to a port nobody listens on: UNAVAILABLE, three tries, then 503."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics = GatewayMetrics()

    async def resolve() -> None:
        backend = TFServingBackend(f"127.0.0.1:{port}", "dr_grader", metrics, RetryPolicy())
        await backend.start()
        try:
            await backend.resolve(ModelSelector(), timeout_s=5.0)
        finally:
            await backend.close()

    with pytest.raises(ApiError) as raised:
        asyncio.run(resolve())
    assert raised.value.code == "backend_unavailable"
    labels = {"call": "metadata", "grpc_code": "UNAVAILABLE"}
    assert metrics.registry.get_sample_value("drg_backend_errors_total", labels) == 3
