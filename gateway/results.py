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
from gateway.exam import EyeExam, Photo
from gateway.grading import GradingOutcome


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


class ExamEyeResult(BaseModel):
    """One eye of an exam: every photograph's result, and the eye's (its worst gradable
    photograph decides: ``gateway/exam.py``)."""

    images: list[EyeResult] = Field(description="one entry per photograph, in the order sent")
    deciding_image: int | None = Field(
        None, description="index in images of the photograph that decides the eye"
    )
    quality: QualityInfo
    grade: int | None = Field(None, ge=0, le=4, examples=[2])
    grade_label: str | None = Field(None, examples=[GRADE_NAMES[2]])
    probabilities: dict[str, float] | None = None
    referable: bool | None = Field(None, examples=[True])
    referable_probability: float | None = Field(None, examples=[0.85])
    vision_threatening: bool | None = Field(
        None, description="grade >= 3 (severe NPDR or PDR); macular oedema is not assessed"
    )
    action: Action
    recommendation: str
    laterality: Literal["L", "R"]


class PatientResult(BaseModel):
    """Patient-level decision from the eyes examined."""

    action: Action
    referable: bool
    vision_threatening: bool = Field(
        False, description="grade >= 3 in either eye (macular oedema is not assessed)"
    )
    insufficient_quality: bool = Field(
        False, description="an eye was sent without a gradable photograph"
    )
    missing_eyes: list[Literal["left", "right"]] = Field(
        default_factory=list, description="eyes not sent: their status is unknown"
    )
    deciding_eye: Literal["left", "right"] | None
    worst_grade: int | None
    summary: str
    caveat: str = clinical.MACULAR_OEDEMA_CAVEAT


def eye_result(eye: Photo) -> EyeResult:
    """JSON shape of one graded (or ungradable) image."""
    quality = eye.quality
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


def exam_eye_result(exam: EyeExam) -> ExamEyeResult:
    """JSON shape of one eye of an exam."""
    deciding = exam.deciding
    images = [eye_result(image) for image in exam.images]
    chosen = images[exam.deciding_index] if exam.deciding_index is not None else None
    return ExamEyeResult(
        images=images,
        deciding_image=exam.deciding_index,
        quality=QualityInfo(
            gradable=exam.gradable, score=round(exam.quality_score, 6), reasons=exam.quality_reasons
        ),
        grade=deciding.grade if deciding else None,
        grade_label=chosen.grade_label if chosen else None,
        probabilities=chosen.probabilities if chosen else None,
        referable=chosen.referable if chosen else None,
        referable_probability=chosen.referable_probability if chosen else None,
        vision_threatening=exam.vision_threatening,
        action=exam.action,
        recommendation=exam.recommendation,
        laterality="L" if exam.eye == "left" else "R",
    )


def patient_result(left: EyeExam | None, right: EyeExam | None) -> PatientResult:
    """Patient-level referral from the eyes examined."""
    decision = clinical.patient_referral(
        left.finding() if left else None, right.finding() if right else None
    )
    return PatientResult(
        action=decision.action,
        referable=decision.referable,
        vision_threatening=decision.vision_threatening,
        insufficient_quality=decision.insufficient_quality,
        missing_eyes=list(decision.missing_eyes),
        deciding_eye=decision.deciding_eye,
        worst_grade=decision.worst_grade,
        summary=decision.summary,
    )
