"""The graded result as JSON: its shapes and how a grading outcome fills them.

Shared by every way a result leaves the gateway: the REST answers (``gateway/api``) and the
PACS dataplane (``gateway/pacs``: the outbox row read back by ``GET /v1/results``). Nothing
here knows about HTTP (status codes, headers, Response objects stay in ``gateway/api``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from contract.grades import GRADE_NAMES
from gateway import clinical
from gateway.clinical import Action
from gateway.grading import EyeOutcome, GradingOutcome


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
    grade_label: str | None = Field(None, examples=[GRADE_NAMES[2]])
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


class PatientResult(BaseModel):
    """Patient-level decision from both eyes."""

    action: Action
    referable: bool
    deciding_eye: Literal["left", "right"] | None
    worst_grade: int | None
    summary: str


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
