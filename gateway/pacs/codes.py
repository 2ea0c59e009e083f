"""Coded concepts used in the result SR.

Standard codes where they exist: DCM (DICOM PS3.16), SCT (SNOMED CT), UCUM (units). What has no
standard code uses the private coding scheme ``99DRG`` ("DR grading gateway codes"),
documented in docs/pacs.md and identified in each SR's Coding Scheme Identification Sequence.
Code values are at most 16 characters (VR SH) and never change once published.
"""

from __future__ import annotations

from typing import NamedTuple

from contract.grades import GRADES
from fundus.quality import BLURRED, LOW_RESOLUTION, NO_FUNDUS_DISC, OVEREXPOSED, TOO_DARK
from gateway.clinical import Action

PRIVATE_SCHEME = "99DRG"
PRIVATE_SCHEME_NAME = "DR grading gateway codes"
PRIVATE_SCHEME_VERSION = "1"


class Code(NamedTuple):
    """(Code Value, Coding Scheme Designator, Code Meaning)."""

    value: str
    scheme: str
    meaning: str


def _drg(value: str, meaning: str) -> Code:
    if len(value) > 16:
        raise ValueError(f"code value {value!r} is longer than 16 characters")
    return Code(value, PRIVATE_SCHEME, meaning)


# DICOM (PS3.16) codes.
OBSERVER_TYPE = Code("121005", "DCM", "Observer Type")
DEVICE = Code("121007", "DCM", "Device")
DEVICE_OBSERVER_UID = Code("121012", "DCM", "Device Observer UID")
DEVICE_OBSERVER_NAME = Code("121013", "DCM", "Device Observer Name")
DEVICE_OBSERVER_MANUFACTURER = Code("121014", "DCM", "Device Observer Manufacturer")
DEVICE_OBSERVER_MODEL_NAME = Code("121015", "DCM", "Device Observer Model Name")
ALGORITHM_NAME = Code("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Code("111003", "DCM", "Algorithm Version")
FINDINGS = Code("121070", "DCM", "Findings")
SOURCE_IMAGE = Code("121324", "DCM", "Source image")
RECOMMENDATION = Code("121075", "DCM", "Recommendation")
COMMENT = Code("121106", "DCM", "Comment")

# SNOMED CT codes.
DIABETIC_RETINOPATHY = Code("4855003", "SCT", "Diabetic retinopathy")
LATERALITY = Code("272741003", "SCT", "Laterality")
RIGHT = Code("24028007", "SCT", "Right")
LEFT = Code("7771000", "SCT", "Left")
YES = Code("373066001", "SCT", "Yes")
NO = Code("373067005", "SCT", "No")

# UCUM units.
NO_UNITS = Code("1", "UCUM", "no units")
GRADE_UNITS = Code("{grade}", "UCUM", "grade")

# Private codes (99DRG).
REPORT = _drg("DRG-REPORT", "Diabetic retinopathy AI grading report")
ICDR_GRADE = _drg("ICDR-GRADE", "International clinical DR severity grade")
GRADE_PROBABILITY = _drg("P-GRADE", "Probability of the predicted grade")
REFERABLE_DR = _drg("REFERABLE-DR", "Referable diabetic retinopathy")
REFERABLE_PROBABILITY = _drg("P-REFERABLE", "Probability of referable diabetic retinopathy")
GRADABLE = _drg("GRADABLE", "Image gradable for diabetic retinopathy")
QUALITY_SCORE = _drg("QUALITY-SCORE", "Image quality score")
UNGRADABLE_REASON = _drg("UNGRADABLE-RSN", "Reason the image is ungradable")
NEXT_STEP = _drg("NEXT-STEP", "Recommended next step")

GRADE_PROBABILITIES: tuple[Code, ...] = tuple(
    _drg(f"P-ICDR-{grade.number}", f"Probability of international clinical DR grade {grade.number}")
    for grade in GRADES
)
"""One NUM per class of the model's output."""

_SEVERITY_CODES = (  # index = grade number
    _drg("ICDR-0", "No apparent diabetic retinopathy"),
    Code("312903003", "SCT", "Mild nonproliferative diabetic retinopathy"),
    Code("312904009", "SCT", "Moderate nonproliferative diabetic retinopathy"),
    Code("312905005", "SCT", "Severe nonproliferative diabetic retinopathy"),
    Code("59276001", "SCT", "Proliferative diabetic retinopathy"),
)
SEVERITY: dict[int, Code] = {
    grade.number: code for grade, code in zip(GRADES, _SEVERITY_CODES, strict=True)
}
"""The grades of contract/grades.py (international clinical DR severity scale, Wilkinson et
al., Ophthalmology 2003): SNOMED CT disorders for grades 1-4; grade 0 has no SNOMED CT
disorder, hence a private code."""

QUALITY_REASONS: dict[str, Code] = {
    NO_FUNDUS_DISC: _drg("Q-NO-DISC", "No fundus disc found"),
    TOO_DARK: _drg("Q-TOO-DARK", "Image too dark"),
    OVEREXPOSED: _drg("Q-OVEREXPOSED", "Image over-exposed"),
    BLURRED: _drg("Q-BLURRED", "Image out of focus"),
    LOW_RESOLUTION: _drg("Q-LOW-RES", "Resolution too low"),
}
"""One code per reason of the quality gate (fundus.quality.REASONS)."""

ACTIONS: dict[Action, Code] = {
    "rescreen_12_months": _drg("A-RESCREEN-12M", "Rescreen in 12 months"),
    "refer_routine": _drg("A-REFER-ROUTINE", "Routine referral to an ophthalmologist"),
    "refer_soon": _drg("A-REFER-SOON", "Referral to an ophthalmologist within weeks"),
    "refer_urgent": _drg("A-REFER-URGENT", "Urgent referral to an ophthalmologist"),
    "retake_or_refer_in_person": _drg(
        "A-RETAKE-REFER", "Retake the photograph or refer for an in-person examination"
    ),
}
"""The machine-readable next step (gateway.clinical.Action)."""


# The study SR (gateway.pacs.study_sr): one exam per study.
EXAM_REPORT = _drg("DRG-EXAM-REPORT", "Diabetic retinopathy AI screening exam report")
EYE = _drg("EYE", "Eye result")
PHOTOGRAPH = _drg("PHOTOGRAPH", "Photograph result")
PATIENT = _drg("PATIENT", "Patient-level result")
VISION_THREATENING = _drg("VISION-THREAT", "Vision-threatening diabetic retinopathy")
INSUFFICIENT_QUALITY = _drg("INSUFF-QUALITY", "Insufficient image quality")
EYE_MISSING = _drg("EYE-MISSING", "Eye not examined")
DECIDING_IMAGE = _drg("DECIDING-IMAGE", "Photograph that decides the eye result")
STUDY_CODES = (
    EXAM_REPORT,
    EYE,
    PHOTOGRAPH,
    PATIENT,
    VISION_THREATENING,
    INSUFFICIENT_QUALITY,
    EYE_MISSING,
    DECIDING_IMAGE,
)
"""The codes only the study SR uses."""


def private_codes() -> list[Code]:
    """Every 99DRG code, for the documentation and its test."""
    fixed = [
        REPORT,
        ICDR_GRADE,
        GRADE_PROBABILITY,
        REFERABLE_DR,
        REFERABLE_PROBABILITY,
        GRADABLE,
        QUALITY_SCORE,
        UNGRADABLE_REASON,
        NEXT_STEP,
    ]
    pools = [*GRADE_PROBABILITIES, *SEVERITY.values(), *QUALITY_REASONS.values()]
    every = [*fixed, *pools, *ACTIONS.values(), *STUDY_CODES]
    return [c for c in every if c.scheme == PRIVATE_SCHEME]
