"""PACS studies through one real gateway (PACS intake on, SQLite store, no STOW-RS URL: SRs stay
in the store, read from its file): 4 instances in one request = POST /v1/exams, a fifth = a new
SR of 5 sources, a resend of the first four keeps it, the eye from Laterality alone, refusals
(laterality_missing, study_patient_mismatch), access, FHIR ids stable across a rebuild, and
dciodvfy on the study SR."""

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
from synthetic import encode_dicom, synthesize_fundus
from tests.integration.conftest import start_pacs_gateway
from tests.integration.test_pacs_intake import KEYS, SCOPES, failures, multipart, sop_uid
from tests.support.fhir import validate

CANNOT_UNDERSTAND = 0xC000
EYE_FIELDS = ("grade", "referable", "vision_threatening", "quality", "deciding_image", "action")
PATIENT_FIELDS = ("referable", "vision_threatening", "insufficient_quality", "missing_eyes")


def rewrite(data: bytes, **attributes: Any) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    for name, value in attributes.items():
        if value is None:
            delattr(ds, name)
        else:
            setattr(ds, name, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def photos(seed: int, sides: str, study_uid: str | None = None, **attributes: Any) -> list[bytes]:
    """One photograph per letter ("L"/"R") of ``sides``, all in one study (the first's)."""
    parts: list[bytes] = []
    for index, side in enumerate(sides):
        image = synthesize_fundus(index % 5, width=640, height=560, seed=seed + index)
        data = encode_dicom(image, seed=seed + index, laterality=side)  # type: ignore[arg-type]
        study_uid = study_uid or str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)
        parts.append(rewrite(data, StudyInstanceUID=study_uid, **attributes))
    return parts


def study_of(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)


@pytest.fixture(scope="module")
def gw(
    tfserving: TFServingProcess, lean_protos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """One PACS gateway for the module; a 1 s settle time (no PACS: nothing is sent)."""
    clients = {name: (key, SCOPES[name]) for name, key in KEYS.items()}
    process = start_pacs_gateway(
        tmp_path_factory.mktemp("pacs-studies"),
        lean_protos,
        tfserving.target,
        clients,
        pacs_study_settle_s="1",
    )
    yield process
    process.stop()


def stow(gw: GatewayProcess, parts: list[bytes], client: str = "pacs-a") -> httpx.Response:
    body, content_type = multipart(parts)
    headers = {"X-API-Key": KEYS[client], "Content-Type": content_type}
    return httpx.post(gw.url + "/dicomweb/studies", content=body, headers=headers, timeout=90)


def get(gw: GatewayProcess, path: str, client: str = "pacs-a", **headers: str) -> httpx.Response:
    return httpx.get(gw.url + path, headers={"X-API-Key": KEYS[client], **headers}, timeout=30)


def stored_sr(gw: GatewayProcess, study_uid: str) -> bytes:
    """The study's SR bytes, read from the gateway's SQLite store file."""
    path = gw.env["DRG_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (sr,) = db.execute(
            "SELECT sr_bytes FROM studies WHERE study_uid = ?", (study_uid,)
        ).fetchone()
    assert sr is not None
    return bytes(sr)


def sources(sr: bytes) -> list[str]:
    ds = pydicom.dcmread(io.BytesIO(sr))
    return [
        str(item.ReferencedSOPInstanceUID)
        for study in ds.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    ]


def test_four_instances_in_one_request_are_the_exam_of_post_exams(gw: GatewayProcess) -> None:
    parts = photos(700, "LLRR")
    uid = study_of(parts[0])
    assert stow(gw, parts).status_code == 200
    study = get(gw, f"/v1/studies/{uid}").json()
    assert study["study_instance_uid"] == uid
    assert [i["sop_instance_uid"] for i in study["instances"]] == [sop_uid(p) for p in parts]
    assert [(i["eye"], i["image_index"]) for i in study["instances"]] == [
        ("left", 0),
        ("left", 1),
        ("right", 0),
        ("right", 1),
    ]
    assert len(study["left"]["images"]) == len(study["right"]["images"]) == 2
    assert study["sr"]["sop_instance_uid"].startswith("2.25.") and study["sr"]["replaces"] is None
    assert study["delivery"]["status"] == "pending"

    files = [
        (eye, (f"{n}.dcm", data, "application/dicom"))
        for n, (eye, data) in enumerate(zip(("left", "left", "right", "right"), parts, strict=True))
    ]
    answer = httpx.post(
        gw.url + "/v1/exams", files=files, headers={"X-API-Key": KEYS["grader"]}, timeout=90
    )
    assert answer.status_code == 200, answer.text
    expected = answer.json()
    for eye in ("left", "right"):
        assert {k: study[eye][k] for k in EYE_FIELDS} == {k: expected[eye][k] for k in EYE_FIELDS}
    assert {k: study["patient"][k] for k in PATIENT_FIELDS} == {
        k: expected["patient"][k] for k in PATIENT_FIELDS
    }
    for data in parts:  # each member's own result names the study's SR
        member = get(gw, f"/v1/results/{sop_uid(data)}").json()
        assert member["sr"]["sop_instance_uid"] == study["sr"]["sop_instance_uid"]


def test_a_fifth_instance_is_a_new_sr_and_a_resend_of_the_four_keeps_it(
    gw: GatewayProcess, tmp_path: Path
) -> None:
    parts = photos(720, "LLRR")
    uid = study_of(parts[0])
    assert stow(gw, parts).status_code == 200
    first = get(gw, f"/v1/studies/{uid}").json()["sr"]["sop_instance_uid"]
    assert sorted(sources(stored_sr(gw, uid))) == sorted(sop_uid(p) for p in parts)

    (fifth,) = photos(730, "L", study_uid=uid)
    assert stow(gw, [fifth]).status_code == 200
    grown = get(gw, f"/v1/studies/{uid}").json()
    second = grown["sr"]["sop_instance_uid"]
    assert second != first and len(grown["left"]["images"]) == 3
    sr = stored_sr(gw, uid)
    assert sorted(sources(sr)) == sorted(sop_uid(p) for p in [*parts, fifth])
    assert str(pydicom.dcmread(io.BytesIO(sr)).SOPInstanceUID) == second
    for data in [*parts, fifth]:  # the earlier members follow the study's new SR
        assert get(gw, f"/v1/results/{sop_uid(data)}").json()["sr"]["sop_instance_uid"] == second

    assert stow(gw, parts).status_code == 200  # an honest resend of the first four
    again = get(gw, f"/v1/studies/{uid}").json()
    assert again["sr"]["sop_instance_uid"] == second and len(again["instances"]) == 5
    assert again["updated_at"] == grown["updated_at"]

    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    path = tmp_path / "study-sr.dcm"
    path.write_bytes(sr)
    run = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, check=False)
    lines = (run.stdout + run.stderr).splitlines()
    assert [line for line in lines if line.startswith("Error")] == [], "\n".join(lines)


def test_the_eye_comes_from_laterality_and_no_eye_is_refused(gw: GatewayProcess) -> None:
    image = synthesize_fundus(1, width=640, height=560, seed=740)
    unsided = encode_dicom(image, seed=740, laterality=None)
    response = stow(gw, [unsided])
    assert response.status_code == 409
    assert failures(response) == [(CANNOT_UNDERSTAND, "laterality_missing")]
    assert get(gw, f"/v1/results/{sop_uid(unsided)}").status_code == 404

    (series_sided,) = photos(741, "R")
    series_sided = rewrite(series_sided, ImageLaterality=None, Laterality="L")
    assert stow(gw, [series_sided]).status_code == 200
    study = get(gw, f"/v1/studies/{study_of(series_sided)}").json()
    assert [i["eye"] for i in study["instances"]] == ["left"] and study["right"] is None


def test_another_patient_id_for_a_known_study_is_refused(gw: GatewayProcess) -> None:
    parts = photos(750, "LR")
    uid = study_of(parts[0])
    assert stow(gw, parts).status_code == 200
    before = get(gw, f"/v1/studies/{uid}").json()
    (intruder,) = photos(752, "R", study_uid=uid, PatientID="SYN0002")
    response = stow(gw, [intruder])
    assert response.status_code == 409
    assert failures(response) == [(CANNOT_UNDERSTAND, "study_patient_mismatch")]
    assert get(gw, f"/v1/results/{sop_uid(intruder)}").status_code == 404
    assert get(gw, f"/v1/studies/{uid}").json() == before


def test_who_reads_a_study(gw: GatewayProcess) -> None:
    parts = photos(760, "L")
    uid = study_of(parts[0])
    assert stow(gw, parts).status_code == 200
    assert get(gw, f"/v1/studies/{uid}").status_code == 200
    assert get(gw, f"/v1/studies/{uid}", client="admin").status_code == 200
    foreign = get(gw, f"/v1/studies/{uid}", client="pacs-b")
    unknown = get(gw, "/v1/studies/1.2.826.0.1.99", client="pacs-b")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert foreign.json()["error"]["message"] == unknown.json()["error"]["message"]


def test_the_fhir_bundle_validates_and_keeps_its_ids_across_a_rebuild(gw: GatewayProcess) -> None:
    parts = photos(770, "LR")
    uid = study_of(parts[0])
    assert stow(gw, parts).status_code == 200
    fhir = {"Accept": "application/fhir+json"}

    def bundle() -> dict[str, Any]:
        response = get(gw, f"/v1/studies/{uid}", **fhir)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+json")
        body: dict[str, Any] = response.json()
        validate(body)
        assert body["resourceType"] == "Bundle"
        return body

    def ids(body: dict[str, Any]) -> list[str]:
        return [e["resource"]["id"] for e in body["entry"]]

    first = bundle()
    assert ids(bundle()) == ids(first)
    assert stow(gw, photos(772, "R", study_uid=uid)).status_code == 200
    rebuilt = bundle()  # the rebuilt exam updates the same resources, adds the new image's
    assert set(ids(first)) < set(ids(rebuilt))
    assert ids(bundle()) == ids(rebuilt)
