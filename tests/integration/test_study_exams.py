"""PACS studies graded as screening exams by a real gateway (uvicorn, PACS intake on, SQLite
store, no STOW-RS URL so SRs stay in the store) in front of the TF Serving stand-in: grouping,
later instances, idempotent resends, laterality, another patient, access, FHIR, dciodvfy."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from harness.processes import GatewayProcess, TFServingProcess
from synthetic import encode_dicom, synthesize_fundus, synthesize_non_fundus
from tests.integration.conftest import start_pacs_gateway
from tests.integration.test_pacs_intake import KEYS, SCOPES, failures, multipart, sop_uid
from tests.support.fhir import resources, validate

CANNOT_UNDERSTAND = 0xC000


def study_photos(
    base_seed: int, sides: str, study_uid: str | None = None, patient_id: str = "SYN0001"
) -> list[bytes]:
    """One photograph per letter of ``sides`` ("L"/"R"), all in one study of one patient; the
    first letter "U" makes an ungradable document photograph."""
    parts = []
    for index, side in enumerate(sides):
        seed = base_seed + index
        eye = "L" if side in "Ll" else "R"
        if side.islower():  # lower case: not a fundus photograph (ungradable)
            image = synthesize_non_fundus("document", width=640, height=480, seed=seed)
        else:
            image = synthesize_fundus(index % 5, width=640, height=560, seed=seed, laterality=eye)
        ds = pydicom.dcmread(io.BytesIO(encode_dicom(image, seed=seed, laterality=eye)))
        study_uid = study_uid or str(ds.StudyInstanceUID)
        ds.StudyInstanceUID = study_uid
        ds.PatientID = patient_id
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        parts.append(out.getvalue())
    return parts


def study_of(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)


@pytest.fixture(scope="module")
def studies_gateway(
    tfserving: TFServingProcess, lean_protos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A PACS gateway with four clients; SRs stay in its SQLite store."""
    clients = {name: (key, SCOPES[name]) for name, key in KEYS.items()}
    process = start_pacs_gateway(
        tmp_path_factory.mktemp("studies-gw"),
        lean_protos,
        tfserving.target,
        clients,
        pacs_study_settle_s="30",
    )
    yield process
    process.stop()


def send(gateway: GatewayProcess, client: str, parts: list[bytes]) -> httpx.Response:
    body, content_type = multipart(parts)
    headers = {"X-API-Key": KEYS[client], "Content-Type": content_type}
    return httpx.post(gateway.url + "/dicomweb/studies", content=body, headers=headers, timeout=90)


def get(gateway: GatewayProcess, client: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(gateway.url + path, headers={"X-API-Key": KEYS[client], **headers}, timeout=30)


def study_row(gateway: GatewayProcess, study_uid: str) -> tuple[bytes | None, str]:
    """(SR bytes, status) of the study, read straight from the gateway's SQLite store."""
    path = gateway.env["DRG_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT sr_bytes, status FROM studies WHERE study_uid = ?", (study_uid,)
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def exam(gateway: GatewayProcess, parts: list[bytes]) -> dict[str, Any]:
    files = []
    for data in parts:
        side = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).ImageLaterality)
        files.append(("left" if side == "L" else "right", ("p.dcm", data, "application/dicom")))
    response = httpx.post(
        gateway.url + "/v1/exams", files=files, headers={"X-API-Key": KEYS["grader"]}, timeout=90
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


EYE_FIELDS = ("grade", "referable", "vision_threatening", "quality", "deciding_image", "action")
PATIENT_FIELDS = ("referable", "vision_threatening", "insufficient_quality", "missing_eyes")


def test_one_request_of_four_is_one_exam_equal_to_post_exams(
    studies_gateway: GatewayProcess,
) -> None:
    parts = study_photos(500, "LLRr")  # the second right photograph is ungradable
    uid = study_of(parts[0])
    response = send(studies_gateway, "pacs-a", parts)
    assert response.status_code == 200, response.text
    study = get(studies_gateway, "pacs-a", f"/v1/studies/{uid}").json()
    assert [i["sop_instance_uid"] for i in study["instances"]] == [sop_uid(p) for p in parts]
    assert [(i["eye"], i["image_index"]) for i in study["instances"]] == [
        ("left", 0),
        ("left", 1),
        ("right", 0),
        ("right", 1),
    ]
    assert study["delivery"]["status"] == "pending"
    assert study["sr"]["replaces"] is None
    expected = exam(studies_gateway, parts)
    for eye in ("left", "right"):
        assert len(study[eye]["images"]) == 2
        assert {k: study[eye][k] for k in EYE_FIELDS} == {k: expected[eye][k] for k in EYE_FIELDS}
    assert study["right"]["images"][1]["quality"]["gradable"] is False
    assert study["right"]["deciding_image"] == 0  # graded from its gradable photograph
    assert {k: study["patient"][k] for k in PATIENT_FIELDS} == {
        k: expected["patient"][k] for k in PATIENT_FIELDS
    }
    # A member's own result names the study's SR.
    member = get(studies_gateway, "pacs-a", f"/v1/results/{sop_uid(parts[3])}").json()
    assert member["sr"]["sop_instance_uid"] == study["sr"]["sop_instance_uid"]
    assert member["delivery"]["status"] == "pending"


def test_resend_is_the_same_sr_and_a_later_instance_a_new_one(
    studies_gateway: GatewayProcess, tmp_path: Path
) -> None:
    parts = study_photos(520, "LR")
    uid = study_of(parts[0])
    assert send(studies_gateway, "pacs-a", parts).status_code == 200
    first = get(studies_gateway, "pacs-a", f"/v1/studies/{uid}").json()
    assert send(studies_gateway, "pacs-a", parts).status_code == 200  # an honest resend
    again = get(studies_gateway, "pacs-a", f"/v1/studies/{uid}").json()
    assert again["sr"] == first["sr"] and again["updated_at"] == first["updated_at"]

    (third,) = study_photos(522, "R", study_uid=uid)
    assert send(studies_gateway, "pacs-a", [third]).status_code == 200
    later = get(studies_gateway, "pacs-a", f"/v1/studies/{uid}").json()
    assert later["sr"]["sop_instance_uid"] != first["sr"]["sop_instance_uid"]
    assert len(later["instances"]) == 3 and len(later["right"]["images"]) == 2
    # The first SR never left (no PACS configured): the new one replaces nothing the PACS has.
    assert later["sr"]["replaces"] is None
    sr_bytes, status = study_row(studies_gateway, uid)
    assert status == "pending" and sr_bytes is not None
    sr = pydicom.dcmread(io.BytesIO(sr_bytes))
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert referenced == {sop_uid(p) for p in [*parts, third]}
    assert str(sr.SOPInstanceUID) == later["sr"]["sop_instance_uid"]
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    path = tmp_path / "study.dcm"
    path.write_bytes(sr_bytes)
    run = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    assert errors == []


def test_no_laterality_and_another_patient_are_refused_per_instance(
    studies_gateway: GatewayProcess,
) -> None:
    image = synthesize_fundus(1, width=640, height=560, seed=540)
    unsided = encode_dicom(image, seed=540, laterality=None)
    (good,) = study_photos(541, "L")
    response = send(studies_gateway, "pacs-a", [unsided, good])
    assert response.status_code == 202
    assert failures(response) == [(CANNOT_UNDERSTAND, "laterality_missing")]

    (intruder,) = study_photos(542, "R", study_uid=study_of(good), patient_id="OTHER-ID")
    response = send(studies_gateway, "pacs-a", [intruder])
    assert response.status_code == 409
    assert failures(response) == [(CANNOT_UNDERSTAND, "study_patient_mismatch")]
    study = get(studies_gateway, "pacs-a", f"/v1/studies/{study_of(good)}").json()
    assert len(study["instances"]) == 1  # the intruder was not stored


def test_a_study_is_read_by_its_sender_and_admins_only(studies_gateway: GatewayProcess) -> None:
    parts = study_photos(560, "R")
    uid = study_of(parts[0])
    assert send(studies_gateway, "pacs-a", parts).status_code == 200
    assert get(studies_gateway, "pacs-a", f"/v1/studies/{uid}").status_code == 200
    assert get(studies_gateway, "admin", f"/v1/studies/{uid}").status_code == 200
    foreign = get(studies_gateway, "pacs-b", f"/v1/studies/{uid}")
    unknown = get(studies_gateway, "pacs-b", "/v1/studies/1.2.3.4.5.6")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"] == unknown.json()["error"]
    assert get(studies_gateway, "pacs-a", "/v1/studies/not-a-uid").status_code == 422


def test_the_study_as_a_fhir_bundle_passes_both_validators_with_stable_ids(
    studies_gateway: GatewayProcess,
) -> None:
    parts = study_photos(580, "LR")
    uid = study_of(parts[0])
    assert send(studies_gateway, "pacs-a", parts).status_code == 200
    fhir = {"Accept": "application/fhir+json"}
    first = get(studies_gateway, "pacs-a", f"/v1/studies/{uid}", **fhir)
    assert first.headers["content-type"].startswith("application/fhir+json")
    bundle = first.json()
    validate(bundle)
    (report,) = resources(bundle, "DiagnosticReport")
    again = get(studies_gateway, "pacs-a", f"/v1/studies/{uid}", **fhir).json()
    assert [e["resource"]["id"] for e in again["entry"]] == [
        e["resource"]["id"] for e in bundle["entry"]
    ]
    assert report["resourceType"] == "DiagnosticReport"
