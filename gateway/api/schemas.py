"""Response bodies (also the OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gateway.clinical import DISCLAIMER, Action


class ErrorDetail(BaseModel):
    """Stable machine-readable code plus a human message."""

    code: str = Field(examples=["corrupt_image"])
    message: str = Field(examples=["image: JPEG data cannot be decoded: image file is truncated"])


class ErrorResponse(BaseModel):
    """Every error response has this body."""

    error: ErrorDetail


class ModelInfo(BaseModel):
    """The model version that graded the image."""

    name: str = Field(examples=["dr_grader"])
    version: int = Field(examples=[3])


class QualityInfo(BaseModel):
    """Quality gate verdict; ungradable images are not graded."""

    gradable: bool
    score: float = Field(ge=0, le=1, examples=[0.93])
    reasons: list[str] = Field(examples=[[]])


class Timings(BaseModel):
    """Where the time went, in milliseconds."""

    preprocess_ms: float
    inference_ms: float
    total_ms: float


class EyeResult(BaseModel):
    """Grading of one photograph."""

    quality: QualityInfo
    grade: int | None = Field(None, ge=0, le=4, examples=[2])
    grade_label: str | None = Field(None, examples=["Moderate non-proliferative DR"])
    probabilities: dict[str, float] | None = Field(
        None, examples=[{"0": 0.05, "1": 0.10, "2": 0.70, "3": 0.10, "4": 0.05}]
    )
    referable: bool | None = Field(None, examples=[True])
    referable_probability: float | None = Field(None, examples=[0.85])
    action: Action
    recommendation: str
    laterality: Literal["L", "R"] | None = None
    heatmap_png_base64: str | None = Field(
        None, description="Grad-CAM overlay on the model input (PNG, base64); with ?explain=true"
    )
    warnings: list[str] = Field(default_factory=list)


class GradeResponse(EyeResult):
    """``POST /v1/grade``."""

    request_id: str
    model: ModelInfo
    timings: Timings
    disclaimer: str = DISCLAIMER
    model_warning: str | None = None


class PatientResult(BaseModel):
    """Patient-level decision from both eyes."""

    action: Action
    referable: bool
    deciding_eye: Literal["left", "right"] | None
    worst_grade: int | None
    summary: str


class ExamResponse(BaseModel):
    """``POST /v1/exams``: both eyes and the patient-level referral."""

    request_id: str
    model: ModelInfo
    left: EyeResult
    right: EyeResult
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
