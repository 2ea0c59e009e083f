"""``POST /v1/exams`` with ``Accept: application/fhir+json`` through a real gateway and the TF
Serving stand-in: the answer is a FHIR R4 Bundle of the same exam, accepted by fhir.resources
and by fhirclient (strict); without the header the answer stays JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.fhir import systems
from gateway.pacs import codes as pacs_codes
from tests.integration.test_exams import UNGRADABLE, files, photo
from tests.support.fhir import codes, is_ai_labelled, resources, validate

FHIR = {"Accept": "application/fhir+json"}
SNOMED_SEVERITY = {"312903003", "312904009", "312905005", "59276001"}


def grade_observations(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        o
        for o in resources(bundle, "Observation")
        if o["code"]["coding"][0]["code"] == "ICDR-GRADE"
    ]


def test_the_bundle_of_real_eyepacs_photographs_matches_the_json(
    client: httpx.Client, eyepacs_files: list[Path]
) -> None:
    by_name = {path.stem: path.read_bytes() for path in eyepacs_files}
    exam = files([by_name["10_left"], by_name["13_left"]], [by_name["10_right"], UNGRADABLE])
    as_json = client.post("/v1/exams", files=exam)
    as_fhir = client.post("/v1/exams", files=exam, headers=FHIR)
    assert as_json.status_code == as_fhir.status_code == 200, as_fhir.text
    assert as_json.headers["content-type"] == "application/json"
    assert as_fhir.headers["content-type"].startswith("application/fhir+json")
    bundle = as_fhir.json()
    validate(bundle)
    body = as_json.json()
    [report] = resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary" and is_ai_labelled(report)
    assert report["conclusion"] == body["patient"]["summary"]
    [patient] = [o for o in resources(bundle, "Observation") if "hasMember" in o]
    action = [c["code"] for c in patient["valueCodeableConcept"]["coding"]]
    assert action == [pacs_codes.ACTIONS[body["patient"]["action"]].value]
    eyes = [o for o in grade_observations(bundle) if "derivedFrom" in o]
    assert len(eyes) == 2 and len(grade_observations(bundle)) == 2 + 4
    for observation, side in zip(eyes, ("left", "right"), strict=True):
        site = "8966001" if side == "left" else "18944008"
        assert codes(observation["bodySite"]) == {(systems.SNOMED, site)}
        grade = body[side]["grade"]
        if grade is None:
            assert "dataAbsentReason" in observation
        else:
            value = codes(observation["valueCodeableConcept"])
            expected = systems.LOCAL if grade == 0 else systems.SNOMED
            assert {system for system, _ in value} == {expected}
            assert grade == 0 or {code for _, code in value} <= SNOMED_SEVERITY
    [device] = resources(bundle, "Device")
    assert device["deviceName"][0]["name"] == body["model"]["name"]
    assert device["version"][0]["value"] == str(body["model"]["version"])
    assert '"subject"' not in as_fhir.text


def test_one_eye_missing_through_the_gateway(client: httpx.Client) -> None:
    response = client.post("/v1/exams", files=files([photo(seed=80)], []), headers=FHIR)
    assert response.status_code == 200, response.text
    bundle = response.json()
    validate(bundle)
    [patient] = [o for o in resources(bundle, "Observation") if "hasMember" in o]
    missing = [c for c in patient["component"] if c["code"]["coding"][0]["code"] == "EYE-NOT-EXAM"]
    assert codes(missing[0]["valueCodeableConcept"]) == {(systems.SNOMED, "18944008")}


def test_json_stays_the_default_and_is_preferred_when_weighted_higher(
    client: httpx.Client,
) -> None:
    exam = files([photo(seed=81)], [])
    for accept in ("*/*", "application/json", "application/json, application/fhir+json;q=0.5"):
        response = client.post("/v1/exams", files=exam, headers={"Accept": accept})
        assert response.headers["content-type"] == "application/json", accept
        assert "patient" in response.json()


def test_the_openapi_document_names_the_fhir_media_type(client: httpx.Client) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/exams"]["post"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"application/json", "application/fhir+json"}
