"""The one error table: gRPC codes and fundus codes map to documented HTTP errors."""

from __future__ import annotations

import grpc
import pytest

from fundus.errors import ERROR_CODES, CorruptImage
from gateway.errors import ERRORS, GRPC_TO_ERROR, ApiError, from_fundus, from_grpc


def test_every_grpc_code_is_mapped_to_a_known_error() -> None:
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        assert GRPC_TO_ERROR[code] in ERRORS


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 422, "backend_rejected_input"),
        (grpc.StatusCode.NOT_FOUND, 503, "model_unavailable"),
        (grpc.StatusCode.UNAVAILABLE, 503, "backend_unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "backend_timeout"),
        (grpc.StatusCode.FAILED_PRECONDITION, 503, "model_unavailable"),
        (grpc.StatusCode.INTERNAL, 502, "backend_error"),
    ],
)
def test_issue_mapping(code: grpc.StatusCode, status: int, error: str) -> None:
    api_error = from_grpc(code, "details")
    assert (api_error.status, api_error.code) == (status, error)
    assert code.name in api_error.message


def test_every_fundus_error_has_a_4xx_status() -> None:
    for cls in ERROR_CODES:
        assert 400 <= ERRORS[cls.code].status < 500, cls.code


def test_fundus_error_translation() -> None:
    error = from_fundus(CorruptImage("truncated"))
    assert (error.status, error.code) == (422, "corrupt_image")
    assert error.body() == {"error": {"code": "corrupt_image", "message": "truncated"}}


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown error code"):
        ApiError("no_such_code", "x")


def test_only_server_side_faults_are_5xx() -> None:
    server_side = {code for code, spec in ERRORS.items() if spec.status >= 500}
    assert server_side == {
        "overloaded",
        "request_timeout",
        "backend_unavailable",
        "model_unavailable",
        "backend_overloaded",
        "backend_timeout",
        "store_unavailable",
        "backend_error",
        "model_mismatch",
        "not_ready",
        "internal_error",
    }
