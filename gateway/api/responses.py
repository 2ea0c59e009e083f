"""The OpenAPI documentation of error answers (the result bodies are built by gateway.results)."""

from __future__ import annotations

from typing import Any

from gateway.api.schemas import ErrorResponse
from gateway.errors import ERRORS


def error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error codes, grouped by HTTP status."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERRORS[code].status, []).append(code)
    return {
        status: {
            "model": ErrorResponse,
            "description": "; ".join(f"`{c}`: {ERRORS[c].description}" for c in names),
            "content": {
                "application/json": {
                    "examples": {
                        c: {"value": {"error": {"code": c, "message": ERRORS[c].description}}}
                        for c in names
                    }
                }
            },
        }
        for status, names in sorted(by_status.items())
    }


IMAGE_ERRORS = (
    "empty_input",
    "unsupported_format",
    "corrupt_image",
    "image_too_large",
    "image_too_small",
    "dicom_no_pixel_data",
    "dicom_unsupported_transfer_syntax",
    "dicom_unsupported_sop_class",
    "dicom_unsupported_image",
    "malformed_request",
    "missing_field",
    "unsupported_media_type",
    "payload_too_large",
    "invalid_parameter",
)
SERVICE_ERRORS = (
    "unauthorized",
    "forbidden",
    "overloaded",
    "request_timeout",
    "backend_unavailable",
    "model_unavailable",
    "backend_overloaded",
    "backend_timeout",
    "backend_rejected_input",
    "backend_error",
    "model_mismatch",
    "not_ready",
)
