"""The FHIR Bundle of an exam (gateway/fhir), from ExamResponse objects built by the gateway's
own result functions: 2+2 photographs, one eye missing, an ungradable eye. Every Bundle passes
fhir.resources and fhirclient (strict); codes, the AI label and the absence of patient data are
checked on the JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from gateway import clinical
from gateway.api.schemas import ExamResponse
from gateway.fhir import exam_bundle, systems
from gateway.results import (
    ExamEyeResult,
    EyeResult,
    ModelInfo,
    PatientResult,
    QualityInfo,
    Timings,
)
from tests.support.fhir import codes, is_ai_labelled, resources, validate

ISSUED = datetime(2026, 12, 3, 17, 30, tzinfo=UTC)
SNOMED_GRADES = {1: "312903003", 2: "312904009", 3: "312905005", 4: "59276001"}


def photo(grade: int | None, laterality: str) -> EyeResult:
    if grade is None:
        reasons = ["blurred", "too_dark"]
        return EyeResult(
            quality=QualityInfo(gradable=False, score=0.12, reasons=reasons),
            action="retake_or_refer_in_person",
            recommendation=clinical.ungradable_recommendation(reasons),
            laterality=laterality,
        )
    probabilities = {str(i): (0.8 if i == grade else 0.05) for i in range(5)}
    referable = grade >= 2
    return EyeResult(
        quality=QualityInfo(gradable=True, score=0.93, reasons=[]),
        grade=grade,
        grade_label=clinical.grade_label(grade),
        probabilities=probabilities,
        referable=referable,
        referable_probability=sum(p for i, p in probabilities.items() if int(i) >= 2),
        action=clinical.action_for(grade, referable),
        recommendation=clinical.recommendation_for(grade, referable),
        laterality=laterality,
    )


def eye(side: str, grades: list[int | None]) -> tuple[ExamEyeResult, clinical.EyeFinding]:
    laterality = "L" if side == "left" else "R"
    images = [photo(grade, laterality) for grade in grades]
    graded = [(image.grade, -i) for i, image in enumerate(images) if image.grade is not None]
    deciding = -max(graded)[1] if graded else None
    chosen = images[deciding] if deciding is not None else None
    result = ExamEyeResult(
        images=images,
        deciding_image=deciding,
        quality=chosen.quality if chosen else images[0].quality,
        grade=chosen.grade if chosen else None,
        grade_label=chosen.grade_label if chosen else None,
        probabilities=chosen.probabilities if chosen else None,
        referable=chosen.referable if chosen else None,
        referable_probability=chosen.referable_probability if chosen else None,
        vision_threatening=(chosen.grade or 0) >= 3 if chosen else None,
        action=chosen.action if chosen else "retake_or_refer_in_person",
        recommendation=chosen.recommendation if chosen else images[0].recommendation,
        laterality=laterality,
    )
    finding = clinical.EyeFinding(
        side,  # type: ignore[arg-type]
        chosen is not None,
        chosen.grade if chosen else None,
        chosen.referable if chosen else None,
    )
    return result, finding


def exam(left: list[int | None], right: list[int | None]) -> ExamResponse:
    eyes = {
        side: eye(side, grades) if grades else None
        for side, grades in (("left", left), ("right", right))
    }
    decision = clinical.patient_referral(
        *(eyes[side][1] if eyes[side] else None for side in ("left", "right"))  # type: ignore[index]
    )
    return ExamResponse(
        request_id="req-0001",
        model=ModelInfo(name="dr_grader", version=3),
        left=eyes["left"][0] if eyes["left"] else None,
        right=eyes["right"][0] if eyes["right"] else None,
        patient=PatientResult(
            action=decision.action,
            referable=decision.referable,
            vision_threatening=decision.vision_threatening,
            insufficient_quality=decision.insufficient_quality,
            missing_eyes=list(decision.missing_eyes),
            deciding_eye=decision.deciding_eye,
            worst_grade=decision.worst_grade,
            summary=decision.summary,
        ),
        timings=Timings(preprocess_ms=1.0, inference_ms=2.0, total_ms=3.0),
        model_warning="demo model: not for clinical use",
    )


def component(observation: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [c for c in observation["component"] if c["code"]["coding"][0]["code"] == code]


def grading(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        o
        for o in resources(bundle, "Observation")
        if o["code"]["coding"][0]["code"] == "ICDR-GRADE"
    ]


def test_two_photographs_per_eye() -> None:
    bundle = exam_bundle(exam([1, 3], [0, 2]), issued=ISSUED)
    validate(bundle)
    assert bundle["type"] == "collection"
    [report] = resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary" and is_ai_labelled(report)
    assert codes(report["conclusionCode"][0]) == {(systems.SNOMED, SNOMED_GRADES[3])}
    observations = resources(bundle, "Observation")
    assert len(observations) == 1 + 2 + 4  # patient, eyes, photographs
    assert {r["reference"] for r in report["result"]} == {
        f"urn:uuid:{o['id']}" for o in observations
    }
    assert all(is_ai_labelled(o) and o["status"] == "preliminary" for o in observations)
    left, right = [o for o in grading(bundle) if "derivedFrom" in o]
    assert codes(left["bodySite"]) == {(systems.SNOMED, "8966001")}
    assert codes(right["bodySite"]) == {(systems.SNOMED, "18944008")}
    assert codes(left["valueCodeableConcept"]) == {(systems.SNOMED, SNOMED_GRADES[3])}
    assert codes(right["valueCodeableConcept"]) == {(systems.SNOMED, SNOMED_GRADES[2])}
    assert component(left, "VT-DR")[0]["valueBoolean"] is True
    assert component(right, "VT-DR")[0]["valueBoolean"] is False
    assert component(right, "REFERABLE-DR")[0]["valueBoolean"] is True
    assert len(left["derivedFrom"]) == 2
    no_dr = [o for o in grading(bundle) if o["valueCodeableConcept"]["text"] == "No DR"]
    assert codes(no_dr[0]["valueCodeableConcept"]) == {(systems.LOCAL, "ICDR-0")}
    [patient] = [o for o in observations if o["code"]["coding"][0]["code"] == "PATIENT-RESULT"]
    assert codes(patient["valueCodeableConcept"]) == {(systems.LOCAL, "A-REFER-SOON")}
    assert component(patient, "VT-DR")[0]["valueBoolean"] is True
    assert len(patient["hasMember"]) == 2
    [device] = resources(bundle, "Device")
    assert device["deviceName"] == [{"name": "dr_grader", "type": "model-name"}]
    assert device["version"][0]["value"] == "3"
    assert all(o["device"]["reference"] == f"urn:uuid:{device['id']}" for o in observations)
    [provenance] = resources(bundle, "Provenance")
    assert provenance["agent"][0]["who"]["reference"] == f"urn:uuid:{device['id']}"
    assert len(provenance["target"]) == 1 + len(observations)


def test_one_eye_missing() -> None:
    bundle = exam([], [2])
    document = exam_bundle(bundle, issued=ISSUED)
    validate(document)
    [patient] = [o for o in resources(document, "Observation") if "hasMember" in o]
    [missing] = component(patient, "EYE-NOT-EXAM")
    assert codes(missing["valueCodeableConcept"]) == {(systems.SNOMED, "8966001")}
    assert "left eye was not examined" in patient["note"][0]["text"]
    sites = {c for o in grading(document) for c in codes(o["bodySite"])}
    assert sites == {(systems.SNOMED, "18944008")}


def test_an_ungradable_eye_has_no_grade_and_says_why() -> None:
    document = exam_bundle(exam([None, None], [1]), issued=ISSUED)
    validate(document)
    left = [o for o in grading(document) if (systems.SNOMED, "8966001") in codes(o["bodySite"])]
    assert len(left) == 3
    for observation in left:
        assert "valueCodeableConcept" not in observation
        assert codes(observation["dataAbsentReason"]) == {
            (systems.DATA_ABSENT_REASON, "not-performed")
        }
        assert component(observation, "GRADABLE")[0]["valueBoolean"] is False
        reasons = {
            c
            for r in component(observation, "UNGRADABLE-RSN")
            for c in codes(r["valueCodeableConcept"])
        }
        assert reasons == {(systems.LOCAL, "Q-BLURRED"), (systems.LOCAL, "Q-TOO-DARK")}
    [patient] = [o for o in resources(document, "Observation") if "hasMember" in o]
    assert component(patient, "INSUFFICIENT-Q")[0]["valueBoolean"] is True
    assert codes(patient["valueCodeableConcept"]) == {(systems.LOCAL, "A-RETAKE-REFER")}


def test_no_patient_data_and_stable_ids() -> None:
    response = exam([2], [2])
    document = exam_bundle(response, issued=ISSUED)
    assert exam_bundle(response.model_dump(mode="json"), issued=ISSUED) == document
    kinds = {e["resource"]["resourceType"] for e in document["entry"]}
    assert kinds == {"DiagnosticReport", "Observation", "Device", "Provenance"}
    text = json.dumps(document)
    assert '"subject"' not in text and "Patient/" not in text
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in document["entry"])


def test_the_validators_refuse_a_broken_bundle() -> None:
    """Both validators can fail: a DiagnosticReport without its required status."""
    document = exam_bundle(exam([1], [1]), issued=ISSUED)
    del document["entry"][0]["resource"]["status"]
    with pytest.raises(Exception, match="status"):
        Bundle.model_validate(document)
    with pytest.raises(Exception, match="status"):
        validate_smart_only(document)


def validate_smart_only(document: dict[str, Any]) -> None:
    from fhirclient.models.bundle import Bundle as SmartBundle

    SmartBundle(jsondict=document, strict=True)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        exam_bundle(exam([1], []), issued=datetime(2026, 12, 3))
