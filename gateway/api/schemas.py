"""HTTP response bodies (also the OpenAPI schema), around the result shapes of gateway.results."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gateway.clinical import DISCLAIMER
from gateway.results import ExamEyeResult, EyeResult, ModelInfo, PatientResult, Timings


class ErrorDetail(BaseModel):
    """Stable machine-readable code plus a human message."""

    code: str = Field(examples=["corrupt_image"])
    message: str = Field(examples=["image: JPEG data cannot be decoded: image file is truncated"])


class ErrorResponse(BaseModel):
    """Every error response has this body."""

    error: ErrorDetail


class GradeResponse(EyeResult):
    """``POST /v1/grade``."""

    request_id: str
    model: ModelInfo
    timings: Timings
    disclaimer: str = DISCLAIMER
    model_warning: str | None = None


class ExamResponse(BaseModel):
    """``POST /v1/exams``: each eye examined (null when not sent) and the patient-level referral."""

    request_id: str
    model: ModelInfo
    left: ExamEyeResult | None
    right: ExamEyeResult | None
    patient: PatientResult
    timings: Timings
    disclaimer: str = DISCLAIMER
    model_warning: str | None = None


class LiveResponse(BaseModel):
    """``GET /livez``."""

    status: Literal["alive"] = "alive"


class ReadyResponse(BaseModel):
    """``GET /readyz`` when ready."""

    status: Literal["ready"] = "ready"
    backend: str
    model: ModelInfo
    input_size: int
