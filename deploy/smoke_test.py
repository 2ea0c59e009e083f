"""Smoke test of a deployed gateway: ready, and one real grading request.

    SMOKE_API_KEY=... python deploy/smoke_test.py --url https://dr-grading.example.org \\
        [--expect-version 7] [--image photo.jpg]

1. ``GET /readyz`` until 200 (the model server reports the version AVAILABLE and its signature
   fits), at most ``--ready-timeout`` seconds;
2. ``POST /v1/grade`` with a fundus photograph (a synthetic one from ``synthetic`` unless
   ``--image`` is given): 200, gradable, grade in 0..4, five probabilities summing to 1, the
   expected model version when ``--expect-version`` is given.
Exit 0 when all holds, 1 with the reason otherwise (release.yml then rolls back).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as `python deploy/smoke_test.py`
    sys.path.insert(0, str(REPO_ROOT))


class SmokeFailed(Exception):
    """The deployment does not work."""


def synthetic_photograph() -> bytes:
    """A gradable synthetic fundus photograph (JPEG)."""
    from synthetic import encode_jpeg, synthesize_fundus

    return encode_jpeg(synthesize_fundus(0, seed=7))


def wait_ready(client: httpx.Client, timeout_s: float) -> dict[str, Any]:
    """Poll /readyz until 200; raise with the last answer otherwise."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            response = client.get("/readyz")
            if response.status_code == 200:
                return dict(response.json())
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as error:
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            raise SmokeFailed(f"/readyz not 200 after {timeout_s:.0f} s: {last}")
        time.sleep(2)


def check_grade(body: dict[str, Any], expect_version: int | None) -> None:
    """The fields a clinician's result depends on."""
    quality = body.get("quality") or {}
    if not quality.get("gradable"):
        raise SmokeFailed(f"smoke image judged ungradable: {quality.get('reasons')}")
    grade = body.get("grade")
    if not isinstance(grade, int) or not 0 <= grade <= 4:
        raise SmokeFailed(f"grade {grade!r} is not in 0..4")
    probabilities = body.get("probabilities") or {}
    if sorted(probabilities) != ["0", "1", "2", "3", "4"]:
        raise SmokeFailed(f"probabilities keys {sorted(probabilities)} are not 0..4")
    total = sum(float(p) for p in probabilities.values())
    if abs(total - 1.0) > 1e-3:
        raise SmokeFailed(f"probabilities sum to {total:.4f}, not 1")
    version = (body.get("model") or {}).get("version")
    if expect_version is not None and version != expect_version:
        raise SmokeFailed(f"graded by model version {version}, expected {expect_version}")


def smoke(
    url: str,
    api_key: str,
    image: bytes,
    expect_version: int | None = None,
    ready_timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Run both steps; return a summary."""
    headers = {"Authorization": f"Bearer {api_key}", "X-Request-ID": "release-smoke-test"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        ready = wait_ready(client, ready_timeout_s)
        response = client.post("/v1/grade", content=image, headers={"Content-Type": "image/jpeg"})
        if response.status_code != 200:
            raise SmokeFailed(f"POST /v1/grade: {response.status_code} {response.text[:500]}")
        body = response.json()
        check_grade(body, expect_version)
    return {"ready": ready, "grade": body["grade"], "model": body.get("model")}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="gateway base URL")
    parser.add_argument("--api-key-env", default="SMOKE_API_KEY", help="variable with the key")
    parser.add_argument("--expect-version", type=int)
    parser.add_argument("--image", type=Path, help="JPEG to grade (default: synthetic)")
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    api_key = os.environ.get(args.api_key_env, "")
    if not api_key:
        parser.error(f"set the API key in ${args.api_key_env}")
    image = args.image.read_bytes() if args.image else synthetic_photograph()
    try:
        summary = smoke(args.url, api_key, image, args.expect_version, args.ready_timeout)
    except (SmokeFailed, httpx.HTTPError) as error:
        print(f"SMOKE TEST FAILED: {error}", file=sys.stderr)
        return 1
    print(f"smoke test passed: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
