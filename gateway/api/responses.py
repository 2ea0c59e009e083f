"""Build response bodies from grading outcomes, and the OpenAPI error documentation."""

from __future__ import annotations

from typing import Any

from gateway import clinical
from gateway.api.schemas import (
    ErrorResponse,
    EyeResult,
    ModelInfo,
    PatientResult,
    QualityInfo,
    Timings,
)
from gateway.errors import ERRORS
from gateway.grading import EyeOutcome, GradingOutcome


def eye_result(eye: EyeOutcome) -> EyeResult:
    """JSON shape of one graded (or ungradable) image."""
    quality = eye.preprocessed.quality
    return EyeResult(
        quality=QualityInfo(
            gradable=quality.gradable, score=quality.score, reasons=list(quality.reasons)
        ),
        grade=eye.grade,
        grade_label=clinical.grade_label(eye.grade) if eye.grade is not None else None,
        probabilities=(
            {str(i): round(p, 6) for i, p in enumerate(eye.probabilities)}
            if eye.probabilities is not None
            else None
        ),
        referable=eye.referable,
        referable_probability=(
            round(eye.referable_probability, 6) if eye.referable_probability is not None else None
        ),
        action=eye.action,
        recommendation=eye.recommendation,
        laterality=eye.laterality,
        heatmap_png_base64=eye.heatmap_png_base64,
        warnings=eye.warnings,
    )


def model_info(outcome: GradingOutcome) -> ModelInfo:
    """Name and version that graded the request."""
    return ModelInfo(name=outcome.served.name, version=outcome.served.version)


def model_warning(outcome: GradingOutcome) -> str | None:
    """A warning carried by the model card (e.g. the demo model is not for clinical use)."""
    return outcome.served.card.clinical_warning


def timings(outcome: GradingOutcome, total_ms: float) -> Timings:
    """Milliseconds spent preprocessing, in the model server, and in total."""
    return Timings(
        preprocess_ms=round(outcome.preprocess_ms, 2),
        inference_ms=round(outcome.inference_ms, 2),
        total_ms=round(total_ms, 2),
    )


def patient_result(left: EyeOutcome, right: EyeOutcome) -> PatientResult:
    """Patient-level referral from both eyes."""
    decision = clinical.patient_referral(
        clinical.EyeFinding("left", left.grade is not None, left.grade, left.referable),
        clinical.EyeFinding("right", right.grade is not None, right.grade, right.referable),
    )
    return PatientResult(
        action=decision.action,
        referable=decision.referable,
        deciding_eye=decision.deciding_eye,
        worst_grade=decision.worst_grade,
        summary=decision.summary,
    )


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
