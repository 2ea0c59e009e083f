"""The international clinical diabetic retinopathy severity scale (Wilkinson et al., 2003).

Grades 0-4, their names (the card's class names, the page's full and short names) and the two
clinical cut-offs. Every other module takes them from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Grade:
    """One step of the scale."""

    number: int
    name: str
    """Full name, as shown to the clinician."""
    short_name: str
    """Abbreviation for tight places (the probability bars of the page)."""
    class_name: str
    """The model card's ``class_names`` entry (what export has always written)."""

    @property
    def referable(self) -> bool:
        """Referable DR: moderate non-proliferative DR or worse."""
        return self.number >= REFERABLE_MIN_GRADE


GRADES: tuple[Grade, ...] = (
    Grade(0, "No DR", "No DR", "no DR"),
    Grade(1, "Mild non-proliferative DR", "Mild NPDR", "mild"),
    Grade(2, "Moderate non-proliferative DR", "Moderate NPDR", "moderate"),
    Grade(3, "Severe non-proliferative DR", "Severe NPDR", "severe"),
    Grade(4, "Proliferative DR", "PDR", "proliferative"),
)
"""Index = grade number."""

NUM_GRADES = len(GRADES)
GRADE_NAMES: tuple[str, ...] = tuple(grade.name for grade in GRADES)
GRADE_SHORT_NAMES: tuple[str, ...] = tuple(grade.short_name for grade in GRADES)
CLASS_NAMES: tuple[str, ...] = tuple(grade.class_name for grade in GRADES)

REFERABLE_MIN_GRADE = 2
"""Referable DR = grade >= 2 (moderate NPDR or worse): refer to an ophthalmologist. The
model's ``referable_probability`` is P(grade >= REFERABLE_MIN_GRADE)."""

VISION_THREATENING_MIN_GRADE = 3
"""Vision-threatening DR = grade >= 3 (severe NPDR or proliferative DR): refer soon or urgently.
Nothing uses it yet; the exams issue (patient-level vision-threatening flag) will."""


def is_grade(value: int) -> bool:
    """A grade number of the scale (0..4)."""
    return 0 <= value < NUM_GRADES


def is_referable(grade: int) -> bool:
    """The grade alone is referable DR."""
    return grade >= REFERABLE_MIN_GRADE
