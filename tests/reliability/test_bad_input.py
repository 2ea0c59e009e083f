"""Bad input against the real gateway process (reliability/malformed/): every malformed request gets
a 2xx or a 4xx with a code of gateway/errors.py (STOW-RS: coded failure items), never a 5xx, a
codeless answer or a dropped connection, and the gateway is healthy afterwards.

CI sends 1,500 requests of every family; the 10,000-request run is
``python -m reliability.malformed --requests 10000``. The tests not marked slow need no server: the
generator is deterministic, the judge does fail on each kind of wrong answer, and the gateway
fixes this scenario led to hold (the last slow test is one more).
"""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.pacs.stow import (
    DICOM_JSON_MEDIA_TYPE,
    InstanceResult,
    response_dataset,
)
from harness.gateway_stack import Stack
from reliability.malformed.catalogue import FAMILIES, SCHEDULE, MalformedRequests
from reliability.malformed.health import MAX_PEAK_RSS_MB, health
from reliability.malformed.judging import judge
from reliability.malformed.report import Report, run
from reliability.malformed.wire import GRADE, STOW, MalformedRequest

CI_REQUESTS = 1500
SEED = 1
CORE_CODES = {
    "corrupt_image",
    "unsupported_format",
    "image_too_large",
    "payload_too_large",
    "empty_input",
    "malformed_request",
    "missing_field",
    "unsupported_media_type",
    "invalid_parameter",
    "unauthorized",
    "not_found",
    "method_not_allowed",
    "dicom_unsupported_sop_class",
    "dicom_no_pixel_data",
}
"""Codes the CI run must have met: proof that the families reach the checks they aim at."""


def test_requests_are_deterministic_and_cover_every_family() -> None:
    first, second = MalformedRequests(SEED), MalformedRequests(SEED)
    indices = range(0, 3 * len(SCHEDULE), 5)
    assert [first(i) for i in indices] == [second(i) for i in indices]
    assert {first(i).family for i in range(len(SCHEDULE))} == set(FAMILIES)
    other_seed = MalformedRequests(SEED + 1)
    assert [first(i).body for i in indices] != [other_seed(i).body for i in indices]


def _request(route: str) -> MalformedRequest:
    return MalformedRequest("test", "test", "POST", route, {}, b"")


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _error(code: str, message: str = "why") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _stow(status: int, *results: InstanceResult, drop_code: bool = False) -> httpx.Response:
    document = response_dataset(list(results))
    if drop_code:
        for item in document.get("00081198", {}).get("Value", []):
            for tag in [t for t in item if t.startswith("0009")]:
                del item[tag]
    return httpx.Response(
        status,
        content=json.dumps(document).encode(),
        headers={"content-type": DICOM_JSON_MEDIA_TYPE},
    )


STORED = InstanceResult("1.2.840.10008.5.1.4.1.1.77.1.5.1", "1.2.3")
CORRUPT = InstanceResult(None, None, 0xC000, "corrupt_image", "truncated")
INTERNAL = InstanceResult(None, None, 0x0110, "internal_error", "bug")


@pytest.mark.parametrize(
    ("route", "response", "kind"),
    [
        (GRADE, _json(422, _error("corrupt_image")), "refused"),
        (GRADE, _json(200, {"quality": {"gradable": False}}), "accepted"),
        (GRADE, _json(500, _error("internal_error")), "server_error"),
        (GRADE, _json(503, _error("model_unavailable")), "server_error"),
        (GRADE, httpx.Response(400, text="Bad Request"), "codeless"),
        (GRADE, _json(422, {"detail": "pydantic says no"}), "codeless"),
        (GRADE, _json(422, _error("made_up_code")), "codeless"),
        (GRADE, _json(415, _error("corrupt_image")), "codeless"),  # the table says 422
        (GRADE, _json(422, _error("corrupt_image", "")), "codeless"),
        (GRADE, _json(405, _error("method_not_allowed")), "codeless"),  # no Allow header
        (GRADE, _json(405, _error("method_not_allowed"), {"Allow": "POST"}), "refused"),
        (GRADE, httpx.Response(302, headers={"location": "/"}), "codeless"),
        (STOW, _json(400, _error("malformed_request")), "refused"),
        (STOW, _stow(200, STORED), "accepted"),
        (STOW, _stow(202, STORED, CORRUPT), "accepted"),
        (STOW, _stow(409, CORRUPT), "refused"),
        (STOW, _stow(409, CORRUPT, drop_code=True), "codeless"),
        (STOW, _stow(409, INTERNAL), "server_error"),
        (
            STOW,
            _stow(503, InstanceResult(None, None, 0xA700, "overloaded", "busy")),
            "server_error",
        ),
        (STOW, _stow(200, CORRUPT), "codeless"),  # status and content disagree
    ],
)
def test_judge_fails_every_answer_that_breaks_the_rules(
    route: str, response: httpx.Response, kind: str
) -> None:
    assert judge(_request(route), response).kind == kind


@pytest.fixture(scope="module")
def bad_input_report(stack: Stack) -> Report:
    """1,500 malformed requests of every family, 4 at a time."""
    report = run(stack.gateway.url, MalformedRequests(SEED), CI_REQUESTS, 4)
    print(report.table())
    return report


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bad_input_gets_no_server_error_and_always_a_code(bad_input_report: Report) -> None:
    report = bad_input_report
    listed = "\n".join(f"{r.family} {r.variant}: {r.verdict}" for r in report.failures[:30])
    assert not report.failures, f"{report.table()}\n{listed}"  # no 5xx, codeless 4xx, resets
    met = {
        code
        for result in report.results
        if result.verdict.kind == "refused"
        for code in result.verdict.code.split("+")
    }
    assert not CORE_CODES - met, f"never met: {sorted(CORE_CODES - met)}"
    assert report.count("refused") > 3 * report.count("accepted")


@pytest.mark.slow
def test_gateway_is_healthy_after_the_bad_input(bad_input_report: Report, stack: Stack) -> None:
    after = health(stack)
    assert after.running
    assert (after.livez, after.readyz, after.valid_grade) == (200, 200, 200)
    assert after.internal_errors_logged == 0
    assert after.patient_markers_logged == 0
    assert 0 < after.peak_rss_mb <= MAX_PEAK_RSS_MB, after.describe()
