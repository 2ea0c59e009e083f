"""The one Python load generator of the benches and reliability runners: closed-loop workers,
each sending its next request as soon as the previous one returned (``hey`` is the other, for
sustained HTTP load from outside Python: harness/hey.py).

Two drivers of the same loop:

- ``closed_loop(call, indices, concurrency)``: a fixed number of calls of any function (a
  gateway POST, a gRPC Predict, an in-process model call) from ``concurrency`` threads.
  ``measure_load`` times each call: latency percentiles and throughput (``LoadStats``), for the
  performance benches; ``reliability.malformed`` sends its malformed requests through it.
- ``LoadClient``: asyncio HTTP POSTs until ``stop()``, accounting for every request it sends
  (``LoadResult``), while the caller breaks the system under it. Used by the fault runs.

``LoadClient`` details: each of ``concurrency`` workers sends a request, waits for its fate,
records exactly one ``Outcome`` and starts the next one (no sooner than ``min_interval_s`` after
the previous start, so fast failures do not turn into a busy loop). A fate is an HTTP answer
(status, error code) or one of the failures below, told apart because they mean different
things:

- ``refused``: the TCP connection was refused (httpx.ConnectError): the request never reached
  a server; a load balancer retries it elsewhere.
- ``reset``: the connection broke after the request was sent (httpx.RemoteProtocolError,
  ReadError, WriteError): the request may have been dropped; never acceptable.
- ``timeout``: no answer within the client timeout (the gateway's deadline plus a margin): a
  hang.
- ``other:<ExceptionName>``: anything else.

Every request handed to the HTTP client ends as exactly one outcome (``_one`` turns every
exception into a failure outcome), so ``sent`` is the number of outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

T = TypeVar("T")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation): with fewer than 100 values p99 is the max."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LoadStats:
    """What one load run measured."""

    latencies_ms: list[float]
    elapsed_s: float

    @property
    def requests(self) -> int:
        """Requests timed (warm-up excluded)."""
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Completed requests per second of wall time."""
        return self.requests / self.elapsed_s

    @property
    def p50_ms(self) -> float:
        """Median latency."""
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        """99th percentile latency (nearest rank)."""
        return percentile(self.latencies_ms, 99)


def closed_loop(
    call: Callable[[int], T], indices: Iterable[int], concurrency: int
) -> tuple[list[T], float]:
    """``call(index)`` for every index with ``concurrency`` threads, each sending its next call
    as soon as one returns: the results in index order and the wall time in seconds."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(call, indices))
    return results, time.perf_counter() - started


def measure_load(
    call: Callable[[int], None], requests: int, concurrency: int, warmup: int = 1
) -> LoadStats:
    """Run ``warmup`` untimed calls, then ``requests`` calls (argument: the call's index) with
    ``concurrency`` in flight (``closed_loop``); latency of each call and the wall time."""
    for index in range(warmup):
        call(index)

    def timed(index: int) -> float:
        started = time.perf_counter()
        call(index)
        return (time.perf_counter() - started) * 1000

    latencies, elapsed_s = closed_loop(timed, range(requests), concurrency)
    return LoadStats(latencies, elapsed_s)


REFUSED = "refused"
RESET = "reset"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class Outcome:
    """The fate of one request; times in seconds since the load started."""

    sent_at: float
    done_at: float
    status: int | None = None
    code: str | None = None
    failure: str | None = None

    @property
    def latency_s(self) -> float:
        """Seconds from send to answer (or failure)."""
        return self.done_at - self.sent_at

    @property
    def answered(self) -> bool:
        """An HTTP response came back."""
        return self.status is not None


@dataclass
class LoadResult:
    """Everything one load run saw."""

    outcomes: list[Outcome] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def sent(self) -> int:
        """Requests sent (each ended as one outcome)."""
        return len(self.outcomes)

    @property
    def answered(self) -> int:
        """Requests that got an HTTP response."""
        return sum(1 for o in self.outcomes if o.answered)

    def statuses(self, outcomes: Iterable[Outcome] | None = None) -> Counter[str]:
        """Counts by HTTP status, or by failure kind for requests without an answer."""
        chosen = self.outcomes if outcomes is None else outcomes
        return Counter(str(o.status) if o.answered else str(o.failure) for o in chosen)

    def codes(self, outcomes: Iterable[Outcome] | None = None) -> Counter[str]:
        """Counts by the error code of error answers."""
        chosen = self.outcomes if outcomes is None else outcomes
        return Counter(o.code for o in chosen if o.code is not None)


def latency_summary(outcomes: Iterable[Outcome]) -> str:
    """``p50/p95/p99/max`` of the outcomes' latencies in ms."""
    values = [o.latency_s * 1000 for o in outcomes]
    if not values:
        return "no requests"
    return (
        f"p50 {percentile(values, 50):.1f} ms, p95 {percentile(values, 95):.1f} ms, "
        f"p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms"
    )


def classify(error: Exception) -> str:
    """The failure kind of an exception raised by httpx."""
    if isinstance(error, httpx.ConnectError):
        return REFUSED
    if isinstance(error, httpx.TimeoutException):
        return TIMEOUT
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return RESET
    return f"other:{type(error).__name__}"


def _error_code(response: httpx.Response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "unparseable_error_body"


class LoadClient:
    """``concurrency`` closed-loop workers POSTing ``body`` to ``url`` until ``stop()``."""

    def __init__(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        concurrency: int,
        timeout_s: float,
        min_interval_s: float = 0.0,
    ) -> None:
        self.url = url
        self.body = body
        self.headers = {**headers, "Content-Type": "image/jpeg"}
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.min_interval_s = min_interval_s
        self.result = LoadResult()
        self._stop = asyncio.Event()
        self._started = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    def now(self) -> float:
        """Seconds since ``start``."""
        return time.monotonic() - self._started

    async def start(self) -> None:
        """Open the connection pool and start the workers."""
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        self._started = time.monotonic()
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]

    async def stop(self) -> LoadResult:
        """Let every worker finish its current request (bounded by the client timeout)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self.result.duration_s = self.now()
        if self._client is not None:
            await self._client.aclose()
        return self.result

    async def _worker(self) -> None:
        assert self._client is not None
        while not self._stop.is_set():
            began = self.now()
            self.result.outcomes.append(await self._one(self._client, began))
            pause = self.min_interval_s - (self.now() - began)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), pause)

    async def _one(self, client: httpx.AsyncClient, began: float) -> Outcome:
        try:
            response = await client.post(self.url, content=self.body, headers=self.headers)
        except Exception as error:  # every failure is recorded, none is lost
            return Outcome(began, self.now(), failure=classify(error))
        return Outcome(
            began,
            self.now(),
            status=response.status_code,
            code=_error_code(response),
        )


@dataclass
class Poller:
    """GET ``url`` every ``interval_s`` and record (time since ``clock`` zero, status or -1)."""

    url: str
    interval_s: float
    clock: Callable[[], float]
    samples: list[tuple[float, int]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        async with httpx.AsyncClient(timeout=5) as client:
            while not stop.is_set():
                try:
                    status = (await client.get(self.url)).status_code
                except httpx.HTTPError:
                    status = -1
                self.samples.append((self.clock(), status))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
