"""Closed-loop load: ``requests`` calls from ``concurrency`` threads; latency percentiles and
throughput."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


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


def measure_load(
    call: Callable[[int], None], requests: int, concurrency: int, warmup: int = 1
) -> LoadStats:
    """Run ``warmup`` untimed calls, then ``requests`` calls (argument: the call's index) with
    ``concurrency`` in flight; each thread sends its next call as soon as one returns."""
    for index in range(warmup):
        call(index)
    latencies: list[float] = []

    def timed(index: int) -> None:
        started = time.perf_counter()
        call(index)
        latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, range(requests)))
    return LoadStats(latencies, time.perf_counter() - started)
