"""harness/load.py and harness/hey.py: the closed loop keeps ``concurrency`` calls in flight and
every result, ``measure_load`` times only the measured calls, hey's summary parses."""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.hey import parse_hey, run_hey
from harness.load import closed_loop, measure_load, percentile


def test_closed_loop_returns_every_result_in_index_order_with_bounded_concurrency() -> None:
    in_flight, peak = 0, 0
    lock = threading.Lock()

    def call(index: int) -> int:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.01)
        with lock:
            in_flight -= 1
        return index * 2

    results, elapsed_s = closed_loop(call, range(3, 23), concurrency=4)
    assert results == [i * 2 for i in range(3, 23)]
    assert peak == 4
    assert 0.05 <= elapsed_s < 2  # 20 calls of 10 ms, 4 at a time


def test_measure_load_times_the_requests_but_not_the_warmup() -> None:
    seen: list[int] = []
    stats = measure_load(seen.append, requests=10, concurrency=2, warmup=3)
    assert seen[:3] == [0, 1, 2]  # the warm-up, untimed, before the timed calls
    assert sorted(seen[3:]) == list(range(10))
    assert stats.requests == 10
    assert stats.throughput > 0 and stats.p99_ms >= stats.p50_ms >= 0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 99) == 10.0
    assert percentile([7.0], 1) == 7.0


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.skipif(shutil.which("hey") is None, reason="hey is not installed")
def test_hey_summary_parses_statuses_rate_and_percentiles(server: str) -> None:
    result = parse_hey(run_hey(server + "/ok", 1, 2, []))
    assert set(result.statuses) == {200}
    assert result.requests == result.statuses[200] > 0
    assert result.requests_per_s > 0
    assert not math.isnan(result.percentiles_ms[50])
    missing = parse_hey(run_hey(server + "/missing", 1, 1, []))
    assert set(missing.statuses) == {404}


def test_parse_hey_without_a_latency_distribution_gives_nan() -> None:
    summary = "Summary:\n  Requests/sec:\t0.0000\n\nError distribution:\n  [3]\tdial tcp: refused\n"
    result = parse_hey(summary)
    assert result.errors == {"dial tcp: refused": 3}
    assert result.requests == 3
    assert math.isnan(result.percentiles_ms[99])
