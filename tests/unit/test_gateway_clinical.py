"""Referral rules and wording."""

from __future__ import annotations

import pytest

from gateway.clinical import (
    EyeFinding,
    action_for,
    is_referable,
    patient_referral,
    recommendation_for,
    ungradable_recommendation,
)


@pytest.mark.parametrize(
    ("grade", "probability", "expected"),
    [(0, 0.1, False), (1, 0.49, False), (1, 0.5, True), (2, 0.1, True), (4, 0.9, True)],
)
def test_referable(grade: int, probability: float, expected: bool) -> None:
    assert is_referable(grade, probability, threshold=0.5) is expected


def test_actions_escalate_with_grade() -> None:
    assert [action_for(g, g >= 2) for g in range(5)] == [
        "rescreen_12_months",
        "rescreen_12_months",
        "refer_routine",
        "refer_soon",
        "refer_urgent",
    ]
    assert action_for(1, True) == "refer_routine"


def test_recommendations_are_plain_language() -> None:
    assert "Rescreen in 12 months" in recommendation_for(0, False)
    assert "urgent referral" in recommendation_for(4, True)
    assert "screening threshold" in recommendation_for(1, True)
    advice = ungradable_recommendation(("blurred", "too_dark"))
    assert "out of focus" in advice
    assert "in-person eye examination" in advice


def eye(side: str, grade: int | None, referable: bool | None = None) -> EyeFinding:
    return EyeFinding(
        side, grade is not None, grade, referable if referable is not None else (grade or 0) >= 2
    )  # type: ignore[arg-type]


def test_worse_eye_decides() -> None:
    decision = patient_referral(eye("left", 1), eye("right", 3))
    assert (decision.action, decision.deciding_eye, decision.worst_grade) == (
        "refer_soon",
        "right",
        3,
    )
    assert decision.referable


def test_no_referable_disease() -> None:
    decision = patient_referral(eye("left", 0), eye("right", 1))
    assert decision.action == "rescreen_12_months"
    assert not decision.referable
    assert decision.deciding_eye == "right"


def test_ungradable_eye_means_in_person_exam() -> None:
    decision = patient_referral(eye("left", 0), eye("right", None))
    assert decision.action == "retake_or_refer_in_person"
    assert decision.deciding_eye == "right"
    assert "right eye image is not gradable" in decision.summary


def test_referable_eye_wins_over_an_ungradable_one() -> None:
    decision = patient_referral(eye("left", None), eye("right", 4))
    assert decision.action == "refer_urgent"
    assert decision.referable


def test_both_ungradable() -> None:
    decision = patient_referral(eye("left", None), eye("right", None))
    assert decision.action == "retake_or_refer_in_person"
    assert decision.worst_grade is None
