"""``GET /v1/grading-scale``: the grading scale of contract/grades.py as JSON.

Public like the page that reads it (``/``): the clinician page names grades from this answer,
never from its own copy. No model or backend is needed, so it answers while the model loads.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from contract.grades import GRADES, REFERABLE_MIN_GRADE

router = APIRouter(tags=["reference"])


class ScaleGrade(BaseModel):
    """One grade of the international clinical DR severity scale."""

    grade: int = Field(examples=[REFERABLE_MIN_GRADE])
    name: str = Field(examples=[GRADES[REFERABLE_MIN_GRADE].name])
    short_name: str = Field(examples=[GRADES[REFERABLE_MIN_GRADE].short_name])
    referable: bool = Field(description="This grade alone is referable DR.")


class GradingScale(BaseModel):
    """The scale the ``grade`` of every result is on."""

    grades: list[ScaleGrade] = Field(description="Index = grade number (0-4).")
    referable_min_grade: int = Field(
        examples=[REFERABLE_MIN_GRADE], description="Referable DR = grade >= this."
    )


SCALE = GradingScale(
    grades=[
        ScaleGrade(
            grade=grade.number,
            name=grade.name,
            short_name=grade.short_name,
            referable=grade.referable,
        )
        for grade in GRADES
    ],
    referable_min_grade=REFERABLE_MIN_GRADE,
)


@router.get("/v1/grading-scale", response_model=GradingScale, summary="The grading scale")
async def grading_scale() -> GradingScale:
    """Grade numbers, full and short names, which grades are referable, and the referable
    grade. No API key needed: the clinician page loads it before anyone has signed in."""
    return SCALE
