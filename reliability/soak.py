"""Sustained load on the gateway with ``hey``: errors, latency percentiles and RSS growth.

    python -m reliability.soak --duration 300 --concurrency 8 [--model-root export]

Starts the TF Serving stand-in serving the SavedModel under ``--model-root`` and the lean
gateway (tfserving mode, production settings), then ``hey`` POSTs one synthetic fundus JPEG as
the raw body of /v1/grade at ``--concurrency``: a warm-up run (the first ``--warmup`` fraction
of ``--duration``), then the measured run (the rest). Prints the requests, status counts,
p50/p95/p99 and requests/s of the measured run, the gateway's memory, and PASS/FAIL per
criterion:

- 0 errors in either run: every answer 200, except 503 ``overloaded`` (the backpressure
  answer, which always carries Retry-After; hey cannot show headers, so its 503 count must
  equal the gateway's own ``drg_errors_total{code="overloaded"}``); no connection errors or
  timeouts in hey.
- RSS growth below ``--max-growth`` percent: VmRSS (/proc/PID/status) of the quiescent gateway
  (hey finished, so no request in flight; median of 5 samples) after the warm-up vs after the
  measured run. Under load VmRSS swings by +-15 % within seconds with the decode buffers of the
  requests in flight and the allocator's free lists (sampled every ``--rss-interval`` s,
  written to ``memory.csv`` in the run's directory, peak printed), which would hide a leak of
  that size or fake one; quiescent, it is steady to 0.3 MiB over hundreds of requests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.gateway_stack import (
    AUTH,
    Stack,
    fundus_jpeg,
    memory_kib,
    running_stack,
    scrape_counter,
)
from harness.hey import parse_hey, post_options
from harness.hey import run_hey as hey_summary
from reliability.criteria import Report


def run_hey(url: str, body_file: Path, duration_s: float, concurrency: int, timeout_s: int) -> str:
    """hey's summary for ``duration_s`` of closed-loop POSTs of ``body_file`` as image/jpeg."""
    options = ["-t", str(timeout_s), *post_options(body_file, AUTH, "image/jpeg")]
    return hey_summary(url, duration_s, concurrency, options)


@dataclass
class MemorySampler:
    """Sample a process's VmRSS every ``interval_s`` seconds in a thread until ``stop``."""

    pid: int
    interval_s: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling (time zero is now)."""
        began = time.monotonic()

        def run() -> None:
            while not self._stop.is_set():
                rss = memory_kib(self.pid)["VmRSS"]
                self.samples.append((time.monotonic() - began, rss))
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def write_csv(self, path: Path) -> None:
        """The samples as CSV (seconds, VmRSS KiB)."""
        rows = [f"{t:.1f},{rss}" for t, rss in self.samples]
        path.write_text("\n".join(["t_s,vmrss_kib", *rows]) + "\n")


def quiescent_memory(pid: int, samples: int = 5, interval_s: float = 0.2) -> dict[str, float]:
    """Median VmRSS/RssAnon/RssFile (KiB) of a process with no request in flight."""
    time.sleep(0.5)  # let the last responses' buffers go
    taken = []
    for _ in range(samples):
        taken.append(memory_kib(pid))
        time.sleep(interval_s)
    return {name: statistics.median(s[name] for s in taken) for name in taken[0]}


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def soak(
    stack: Stack,
    duration_s: float,
    concurrency: int,
    *,
    warmup_fraction: float = 0.2,
    rss_interval_s: float = 2.0,
    max_growth_pct: float = 10.0,
) -> Report:
    """Drive ``stack`` with hey (warm-up, then the measured run); judge errors and RSS growth."""
    report = Report(f"soak: {duration_s:g} s at concurrency {concurrency} (hey)")
    body = stack.workdir / "fundus.jpg"
    body.write_bytes(fundus_jpeg())
    timeout_s = int(stack.setting("request_timeout_s")) + 5
    warmup_s = round(duration_s * warmup_fraction, 1)
    measured_s = duration_s - warmup_s
    overloaded_before = scrape_counter(stack.gateway.url, "drg_errors_total", code="overloaded")

    warm = parse_hey(run_hey(stack.grade_url, body, warmup_s, concurrency, timeout_s))
    after_warmup = quiescent_memory(stack.gateway_pid)
    sampler = MemorySampler(stack.gateway_pid, rss_interval_s)
    sampler.start()
    try:
        hey = parse_hey(run_hey(stack.grade_url, body, measured_s, concurrency, timeout_s))
    finally:
        sampler.stop()
    at_end = quiescent_memory(stack.gateway_pid)
    sampler.write_csv(stack.workdir / "memory.csv")
    overloaded = (
        scrape_counter(stack.gateway.url, "drg_errors_total", code="overloaded") - overloaded_before
    )

    statuses = {
        code: warm.statuses.get(code, 0) + hey.statuses.get(code, 0)
        for code in set(warm.statuses) | set(hey.statuses)
    }
    errors = {
        message: warm.errors.get(message, 0) + hey.errors.get(message, 0)
        for message in set(warm.errors) | set(hey.errors)
    }
    requests = warm.requests + hey.requests
    others = {code: n for code, n in statuses.items() if code not in (200, 503)}
    refused = statuses.get(503, 0)
    growth = 100.0 * (at_end["VmRSS"] - after_warmup["VmRSS"]) / after_warmup["VmRSS"]
    per_1000 = (at_end["VmRSS"] - after_warmup["VmRSS"]) / max(hey.requests, 1) * 1000
    under_load = [rss for _, rss in sampler.samples]
    p = hey.percentiles_ms

    report.figure(f"body: synthetic fundus JPEG 1200x900, {body.stat().st_size} bytes, raw POST")
    report.figure(
        f"requests {requests} ({warm.requests} in the {warmup_s:g} s warm-up, {hey.requests} "
        f"in the {measured_s:g} s measured run); statuses {dict(sorted(statuses.items()))}; "
        f"connection errors/timeouts {sum(errors.values())}"
    )
    report.figure(
        f"measured run: latency p50 {p[50]:.1f} ms, p95 {p[95]:.1f} ms, p99 {p[99]:.1f} ms; "
        f"{hey.requests_per_s:.1f} req/s"
    )
    report.figure(
        f"gateway VmRSS quiescent: {_mib(after_warmup['VmRSS'])} after warm-up, "
        f"{_mib(at_end['VmRSS'])} at the end ({growth:+.1f} %, {per_1000:+.0f} KiB per 1000 "
        f"requests); RssAnon {_mib(after_warmup['RssAnon'])} -> {_mib(at_end['RssAnon'])}, "
        f"RssFile {_mib(after_warmup['RssFile'])} -> {_mib(at_end['RssFile'])}"
    )
    if under_load:
        report.figure(
            f"gateway VmRSS under load: {_mib(min(under_load))} .. {_mib(max(under_load))} "
            f"({len(under_load)} samples every {rss_interval_s:g} s)"
        )
    for message, count in errors.items():
        report.figure(f"hey error x{count}: {message}")
    report.check("requests answered 200", statuses.get(200, 0) > 0, f"{statuses.get(200, 0)}")
    report.check(
        "0 errors except 503 overloaded with Retry-After",
        not others and not errors and refused == overloaded,
        f"other statuses {others or 0}, connection errors {sum(errors.values())}, "
        f"503: {refused} seen by hey, {overloaded:.0f} counted as overloaded by the gateway",
    )
    report.check(
        f"RSS growth after warm-up < {max_growth_pct:g} %",
        growth < max_growth_pct,
        f"{growth:+.1f} % ({_mib(after_warmup['VmRSS'])} -> {_mib(at_end['VmRSS'])})",
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """Start the stack, soak it, print the report; exit 1 when a criterion fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model-root", type=Path, default=Path("export"))
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run")
    parser.add_argument("--rss-interval", type=float, default=2.0)
    parser.add_argument("--max-growth", type=float, default=10.0, help="percent")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    with running_stack(args.model_root, workdir) as stack:
        report = soak(
            stack,
            args.duration,
            args.concurrency,
            warmup_fraction=args.warmup,
            rss_interval_s=args.rss_interval,
            max_growth_pct=args.max_growth,
        )
    print(report.render())
    print(f"logs in {workdir}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
