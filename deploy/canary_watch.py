"""Watch the canary gateway pod's errors, latency and grade mix in Prometheus; promote/rollback.

    python deploy/canary_watch.py --prometheus http://127.0.0.1:9090 --expect-version 7 \\
        --duration 900 --interval 60

Exit 0: promote (enough canary traffic, error rate and p95 latency within bounds, the canary pods
really serve the expected version, and the canary's grade mix not different from stable's: a
model that fails no request can still grade worse, so ``drg_predictions_total{grade}`` of the two
tracks is compared with a chi-square test of homogeneity AND a total-variation bound, judged only
once the canary has graded ``--min-graded`` images). Exit 1: roll back, with the reason.
Exit 3: Prometheus could not be queried (treated as a rollback by model-release.yml: no
evidence, no promotion).

The series come from the gateway's own metrics (gateway/metrics.py) with the pod label `track`
that the PodMonitor copies (k8s/components/monitoring); tests/deploy checks both.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GRADING_ROUTES = "/v1/grade|/v1/exams|/dicomweb/studies"
"""The routes that grade images (the same set as the dashboards' and the SLO recording rules');
reads such as /v1/grading-scale or /v1/results are not part of a canary's verdict."""


class PrometheusError(RuntimeError):
    """The query API failed or answered something unusable."""


def queries(namespace: str, track: str, window_s: int) -> dict[str, str]:
    """PromQL for one track ("canary" or "stable") over the last ``window_s`` seconds."""
    selector = f'namespace="{namespace}",track="{track}",route=~"{GRADING_ROUTES}"'
    window = f"{window_s}s"
    return {
        "requests": f"sum(increase(drg_http_requests_total{{{selector}}}[{window}]))",
        "errors": (f'sum(increase(drg_http_requests_total{{{selector},status=~"5.."}}[{window}]))'),
        "p95_s": (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(drg_http_request_duration_seconds_bucket{{{selector}}}[{window}])))"
        ),
        "versions": f'max by (version) (drg_model_info{{namespace="{namespace}",track="{track}"}})',
        # Graded images per grade; the track label (the PodMonitor copies it) says which model
        # version graded them: the canary pods serve only the canary label (checked via
        # drg_model_info above), the stable pods only `stable`.
        "grades": (
            "sum by (grade) (increase(drg_predictions_total"
            f'{{namespace="{namespace}",track="{track}"}}[{window}]))'
        ),
    }


class Prometheus:
    """Minimal client of the Prometheus HTTP API (``/api/v1/query``)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant vector result of ``promql``."""
        url = f"{self.base_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as error:
            raise PrometheusError(f"query failed: {error}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"query {promql!r}: {body.get('error', body)}")
        data = body.get("data", {})
        if data.get("resultType") != "vector":
            raise PrometheusError(
                f"query {promql!r}: expected a vector, got {data.get('resultType')}"
            )
        return list(data.get("result", []))

    def scalar(self, promql: str) -> float:
        """The single value of ``promql``; 0 when the vector is empty (no such series yet)."""
        result = self.query(promql)
        if not result:
            return 0.0
        return float(result[0]["value"][1])


@dataclass(frozen=True)
class Observation:
    """One look at a track."""

    requests: float
    errors: float
    p95_s: float
    versions: frozenset[str]
    grades: tuple[float, ...] = (0.0,) * 5

    @property
    def error_rate(self) -> float:
        """5xx share of grading requests (0 without traffic)."""
        return self.errors / self.requests if self.requests > 0 else 0.0


def observe(prometheus: Prometheus, namespace: str, track: str, window_s: int) -> Observation:
    """Query the four series of a track."""
    q = queries(namespace, track, window_s)
    p95 = prometheus.scalar(q["p95_s"])
    grades = [0.0] * 5
    for row in prometheus.query(q["grades"]):
        grade = row["metric"].get("grade", "")
        if grade.isdigit() and int(grade) < 5:
            grades[int(grade)] = float(row["value"][1])
    return Observation(
        requests=prometheus.scalar(q["requests"]),
        errors=prometheus.scalar(q["errors"]),
        p95_s=0.0 if math.isnan(p95) else p95,
        versions=frozenset(r["metric"].get("version", "") for r in prometheus.query(q["versions"])),
        grades=tuple(grades),
    )


@dataclass(frozen=True)
class Limits:
    """When the canary fails."""

    max_error_rate: float
    max_error_ratio: float
    max_p95_s: float
    min_requests: int
    min_graded: int = 200
    max_grade_tv: float = 0.10
    grade_alpha: float = 0.001


def chi2_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for a chi-square with ``df`` degrees of freedom (series of the lower
    regularized gamma function; no SciPy in the deploy tools)."""
    if statistic <= 0:
        return 1.0
    a, x = df / 2.0, statistic / 2.0
    term = total = 1.0 / a
    n = 0
    while term > total * 1e-15 and n < 10_000:
        n += 1
        term *= x / (a + n)
        total += term
    lower = math.exp(-x + a * math.log(x) - math.lgamma(a)) * total
    return max(0.0, 1.0 - lower)


def grade_mix(canary: Sequence[float], stable: Sequence[float]) -> tuple[float, float]:
    """(total-variation distance, chi-square homogeneity p-value) of two grade count vectors."""
    n_c, n_s = sum(canary), sum(stable)
    if n_c <= 0 or n_s <= 0:
        return 0.0, 1.0
    tv = 0.5 * sum(abs(c / n_c - s / n_s) for c, s in zip(canary, stable, strict=True))
    statistic, used = 0.0, 0
    for c, s in zip(canary, stable, strict=True):
        column = c + s
        if column <= 0:
            continue  # a grade neither track produced adds no degree of freedom
        used += 1
        for observed, row in ((c, n_c), (s, n_s)):
            expected = row * column / (n_c + n_s)
            statistic += (observed - expected) ** 2 / expected
    return tv, chi2_sf(statistic, used - 1) if used > 1 else 1.0


def grade_verdict(canary: Observation, stable: Observation, limits: Limits) -> str | None:
    """A reason to roll back when the canary grades differently from stable, else None.

    Both a significant difference (p < grade_alpha) and a material one (TV > max_grade_tv) are
    needed: with much traffic tiny shifts become significant; with little, big ones are noise.
    """
    if sum(canary.grades) < limits.min_graded:
        return None
    tv, p_value = grade_mix(canary.grades, stable.grades)
    if p_value < limits.grade_alpha and tv > limits.max_grade_tv:
        return (
            f"canary grade mix differs from stable's: total variation {tv:.3f} > "
            f"{limits.max_grade_tv:.3f}, chi-square p = {p_value:.2g} "
            f"(canary {[round(g) for g in canary.grades]}, "
            f"stable {[round(g) for g in stable.grades]})"
        )
    return None


def verdict(canary: Observation, stable: Observation, limits: Limits, final: bool) -> str | None:
    """A reason to roll back, or None. Rates are judged once the canary has enough traffic."""
    enough = canary.requests >= limits.min_requests
    if enough:
        # A canary may be as bad as the absolute bound, or as stable times the ratio when stable
        # itself is having a bad time (then the model is not what is wrong).
        allowed = max(limits.max_error_rate, stable.error_rate * limits.max_error_ratio)
        if canary.error_rate > allowed:
            return (
                f"canary error rate {canary.error_rate:.2%} > {allowed:.2%} "
                f"(stable {stable.error_rate:.2%}, {canary.requests:.0f} requests)"
            )
        if canary.p95_s > limits.max_p95_s:
            return f"canary p95 latency {canary.p95_s:.2f} s > {limits.max_p95_s:.2f} s"
    mix = grade_verdict(canary, stable, limits)
    if mix:
        return mix
    if final and sum(canary.grades) < limits.min_graded:
        return (
            f"only {sum(canary.grades):.0f} images graded by the canary (< {limits.min_graded}): "
            "not enough evidence that it grades like stable"
        )
    if final and not enough:
        return (
            f"only {canary.requests:.0f} canary grading requests (< {limits.min_requests}): "
            "not enough evidence to promote"
        )
    return None


def watch(
    prometheus: Prometheus,
    namespace: str,
    limits: Limits,
    duration_s: float,
    interval_s: float,
    expect_version: int | None,
    min_window_s: int = 60,
) -> str | None:
    """Poll until ``duration_s`` has passed; return the rollback reason or None (promote)."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        final = elapsed >= duration_s
        window_s = max(min_window_s, math.ceil(elapsed))
        canary = observe(prometheus, namespace, "canary", window_s)
        stable = observe(prometheus, namespace, "stable", window_s)
        print(
            json.dumps(
                {
                    "elapsed_s": round(elapsed, 1),
                    "canary": _as_dict(canary),
                    "stable": _as_dict(stable),
                }
            ),
            flush=True,
        )
        reason = verdict(canary, stable, limits, final)
        if reason:
            return reason
        if final:
            if expect_version is not None and canary.versions != {str(expect_version)}:
                return (
                    f"canary pods report model versions {sorted(canary.versions)}, "
                    f"expected only {expect_version}"
                )
            return None
        time.sleep(min(interval_s, max(0.0, duration_s - elapsed)))


def _as_dict(observation: Observation) -> dict[str, Any]:
    return {
        "requests": observation.requests,
        "error_rate": round(observation.error_rate, 5),
        "p95_s": round(observation.p95_s, 4),
        "versions": sorted(observation.versions),
        "grades": [round(g, 1) for g in observation.grades],
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL of the Prometheus API")
    parser.add_argument("--namespace", default="dr-grading")
    parser.add_argument("--expect-version", type=int, help="model version the canary must serve")
    parser.add_argument("--duration", type=float, default=900.0, help="seconds to watch")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between looks")
    parser.add_argument("--max-error-rate", type=float, default=0.02)
    parser.add_argument(
        "--max-error-ratio", type=float, default=2.0, help="allowed multiple of stable's rate"
    )
    parser.add_argument("--max-p95-seconds", type=float, default=3.0)
    parser.add_argument("--min-requests", type=int, default=20)
    parser.add_argument("--min-window", type=int, default=60, help="shortest PromQL range (s)")
    parser.add_argument(
        "--min-graded", type=int, default=200, help="canary images before the grade mix counts"
    )
    parser.add_argument("--max-grade-tv", type=float, default=0.10)
    parser.add_argument("--grade-alpha", type=float, default=0.001)
    args = parser.parse_args(argv)
    limits = Limits(
        args.max_error_rate,
        args.max_error_ratio,
        args.max_p95_seconds,
        args.min_requests,
        args.min_graded,
        args.max_grade_tv,
        args.grade_alpha,
    )
    try:
        reason = watch(
            Prometheus(args.prometheus),
            args.namespace,
            limits,
            args.duration,
            args.interval,
            args.expect_version,
            args.min_window,
        )
    except PrometheusError as error:
        print(f"ROLLBACK: Prometheus unusable: {error}", file=sys.stderr)
        return 3
    if reason:
        print(f"ROLLBACK: {reason}", file=sys.stderr)
        return 1
    print("PROMOTE: canary within bounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
