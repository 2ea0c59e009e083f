"""Clinical wording and referral rules (international DR severity scale, 0-4).

Referable DR = grade >= ``REFERABLE_MIN_GRADE`` (2: moderate NPDR or worse; contract/grades.py).
The texts are decision support for a clinician; local screening-programme protocols take
precedence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contract import grades
from contract.grades import GRADE_NAMES, REFERABLE_MIN_GRADE, VISION_THREATENING_MIN_GRADE
from contract.model_card import MACULAR_OEDEMA_LIMITATION

Action = Literal[
    "rescreen_12_months", "refer_routine", "refer_soon", "refer_urgent", "retake_or_refer_in_person"
]

DISCLAIMER = (
    "Decision support only, not a diagnosis: a qualified clinician must review the image and "
    "this result before any clinical decision."
)

_GRADE_ACTION: dict[int, Action] = {
    0: "rescreen_12_months",
    1: "rescreen_12_months",
    2: "refer_routine",
    3: "refer_soon",
    4: "refer_urgent",
}
_RECOMMENDATION = {
    0: "No diabetic retinopathy detected. Rescreen in 12 months (or as the local screening "
    "programme advises).",
    1: "Mild non-proliferative diabetic retinopathy (microaneurysms only). Not referable: rescreen "
    "in 12 months and review glycaemic and blood-pressure control.",
    2: "Moderate non-proliferative diabetic retinopathy: referable. Refer to an ophthalmologist "
    "for examination (routine referral).",
    3: "Severe non-proliferative diabetic retinopathy: referable. Refer to an ophthalmologist "
    "soon (within weeks); high risk of progression to proliferative disease.",
    4: "Proliferative diabetic retinopathy: urgent referral to an ophthalmologist (within days); "
    "risk of vitreous haemorrhage and sight loss.",
}
_QUALITY_ADVICE = {
    "no_fundus_disc": "the picture does not look like a fundus photograph",
    "too_dark": "it is too dark (check flash/illumination; consider pupil dilation)",
    "overexposed": "it is over-exposed (reduce flash/illumination)",
    "blurred": "it is out of focus (refocus, clean the lens, ask the patient to keep still)",
    "low_resolution": "its resolution is too low (send the original full-resolution image)",
}


def grade_label(grade: int) -> str:
    """Name of a grade on the international scale."""
    return GRADE_NAMES[grade]


def is_referable(grade: int, referable_probability: float, threshold: float) -> bool:
    """Referable when the grade is referable or P(grade >= 2) reaches the card's operating point."""
    return grades.is_referable(grade) or referable_probability >= threshold


def action_for(grade: int, referable: bool) -> Action:
    """What to do for a gradable image."""
    action = _GRADE_ACTION[grade]
    if referable and action == "rescreen_12_months":
        return "refer_routine"
    return action


def recommendation_for(grade: int, referable: bool) -> str:
    """Plain-language recommendation for a gradable image."""
    text = _RECOMMENDATION[grade]
    if grade < REFERABLE_MIN_GRADE and not referable:
        text += " Macular oedema is not assessed by this grading."
    if referable and grade < REFERABLE_MIN_GRADE:
        text += (
            " However, the probability of referable disease is above the screening threshold: "
            "refer for an ophthalmologist's review (routine)."
        )
    return text


def ungradable_recommendation(reasons: tuple[str, ...] | list[str]) -> str:
    """Retake advice, then the fallback: an in-person examination."""
    why = "; ".join(_QUALITY_ADVICE.get(reason, reason) for reason in reasons) or "quality"
    return (
        f"Image not gradable: {why}. Retake the photograph; if a gradable image cannot be "
        "obtained, refer the patient for an in-person eye examination."
    )


MACULAR_OEDEMA_CAVEAT = MACULAR_OEDEMA_LIMITATION


@dataclass(frozen=True)
class EyeFinding:
    """The per-eye facts the patient-level decision needs."""

    eye: Literal["left", "right"]
    gradable: bool
    grade: int | None
    referable: bool | None

    @property
    def vision_threatening(self) -> bool:
        """Severe NPDR or worse (grade >= 3) in this eye."""
        return self.grade is not None and self.grade >= VISION_THREATENING_MIN_GRADE


@dataclass(frozen=True)
class PatientReferral:
    """Patient-level decision for an exam of one or both eyes."""

    action: Action
    referable: bool
    deciding_eye: Literal["left", "right"] | None
    worst_grade: int | None
    summary: str
    vision_threatening: bool = False
    insufficient_quality: bool = False
    missing_eyes: tuple[Literal["left", "right"], ...] = ()


def patient_referral(left: EyeFinding | None, right: EyeFinding | None) -> PatientReferral:
    """The worse eye decides; an ungradable eye (without a referable other eye) means an
    in-person examination; an eye not sent (None) is named as missing, never assumed healthy."""
    present = [eye for eye in (left, right) if eye is not None]
    if not present:
        raise ValueError("an exam needs at least one eye")
    missing: tuple[Literal["left", "right"], ...] = tuple(
        eye_name for eye_name, eye in _sides(left, right) if eye is None
    )
    decision = _decide(present)
    note = f" The {missing[0]} eye was not examined: its status is unknown." if missing else ""
    return PatientReferral(
        decision.action,
        decision.referable,
        decision.deciding_eye,
        decision.worst_grade,
        decision.summary + note,
        vision_threatening=any(eye.vision_threatening for eye in present),
        insufficient_quality=any(not eye.gradable for eye in present),
        missing_eyes=missing,
    )


def _sides(
    left: EyeFinding | None, right: EyeFinding | None
) -> tuple[tuple[Literal["left", "right"], EyeFinding | None], ...]:
    return (("left", left), ("right", right))


def _decide(eyes: list[EyeFinding]) -> PatientReferral:
    gradable = [eye for eye in eyes if eye.gradable and eye.grade is not None]
    ungradable = [eye.eye for eye in eyes if not eye.gradable]
    worst = max(gradable, key=lambda eye: (bool(eye.referable), eye.grade or 0), default=None)
    if worst is not None and worst.referable:
        assert worst.grade is not None
        action = action_for(worst.grade, True)
        label = grade_label(worst.grade)
        summary = f"Refer: the {worst.eye} eye shows {label} (grade {worst.grade})."
        if worst.vision_threatening:
            summary += " Vision-threatening retinopathy."
        return PatientReferral(action, True, worst.eye, worst.grade, summary)
    if ungradable:
        eyes_text = " and ".join(ungradable)
        summary = (
            f"The {eyes_text} eye image{'s are' if len(ungradable) > 1 else ' is'} not gradable: "
            "retake, or refer for an in-person eye examination."
        )
        worst_grade = worst.grade if worst is not None else None
        return PatientReferral(
            "retake_or_refer_in_person", False, ungradable[0], worst_grade, summary
        )
    assert worst is not None and worst.grade is not None
    which = "either eye" if len(eyes) > 1 else f"the {worst.eye} eye"
    detail = f"worse eye: {worst.eye}, " if len(eyes) > 1 else ""
    summary = f"No referable retinopathy in {which} ({detail}grade {worst.grade})."
    return PatientReferral("rescreen_12_months", False, worst.eye, worst.grade, summary)
