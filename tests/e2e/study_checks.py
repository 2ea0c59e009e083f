"""The study phase of the Orthanc scenario (tests/e2e/pacs_scenario.py): a 4-photograph study
through Orthanc gives one study SR that says what ``POST /v1/exams`` says on the same files; a
fifth photograph later gives a new SR naming the first in its Predecessor Documents Sequence."""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Any

import pydicom

from synthetic import encode_dicom, synthesize_fundus
from tests.e2e.dicom_sr import summarize_study
from tests.e2e.waits import wait_for

if TYPE_CHECKING:
    import httpx


def study_photographs(count: int, study_uid: str | None = None) -> list[bytes]:
    """``count`` photographs of one study and patient (left, left, right, right, ...)."""
    parts = []
    for index in range(count):
        side = "L" if index % 4 < 2 else "R"
        seed = 40 + index
        image = synthesize_fundus(index % 5, width=768, height=576, seed=seed, laterality=side)
        ds = pydicom.dcmread(io.BytesIO(encode_dicom(image, seed=seed, laterality=side)))
        study_uid = study_uid or str(ds.StudyInstanceUID)
        ds.StudyInstanceUID = study_uid
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        parts.append(out.getvalue())
    return parts


def eye_findings(eye: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a study SR eye and a POST /v1/exams eye must agree on."""
    if eye is None:
        return None
    return {k: eye.get(k) for k in ("grade", "referable", "gradable", "vision_threatening")}


class StudyChecks:
    """Mixed into the scenario: it provides the clients, Orthanc and the check helpers."""

    grade_http: httpx.Client
    pacs_http: httpx.Client
    orthanc: Any
    report: dict[str, Any]

    def check(self, name: str, ok: bool, detail: Any = None) -> None:
        raise NotImplementedError

    def timed(self, name: str, began: float) -> None:
        raise NotImplementedError

    def dciodvfy_check(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def exam(self, parts: list[bytes]) -> dict[str, Any]:
        """POST /v1/exams with the same DICOM files (ImageLaterality decides the field)."""
        files = []
        for data in parts:
            side = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).ImageLaterality)
            files.append(("left" if side == "L" else "right", ("p.dcm", data, "application/dicom")))
        response = self.grade_http.post("/v1/exams", files=files)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def study_sr(self, study_uid: str, sop_uid: str) -> pydicom.Dataset:
        """The study SR with this SOP Instance UID, once Orthanc holds it."""

        def probe() -> pydicom.Dataset | None:
            for data in self.orthanc.srs(study_uid):
                ds = pydicom.dcmread(io.BytesIO(data))
                if str(ds.SOPInstanceUID) == sop_uid:
                    self.dciodvfy_check(f"study SR {ds.InstanceNumber}", data)
                    return ds
            return None

        return wait_for("the study SR in Orthanc", probe, 45, every_s=0.3)

    def study(self, study_uid: str, delivered: bool = True) -> dict[str, Any]:
        """GET /v1/studies/{uid} (once its SR is delivered, when asked)."""

        def probe() -> dict[str, Any] | None:
            response = self.pacs_http.get(f"/v1/studies/{study_uid}")
            if response.status_code != 200:
                return None
            body: dict[str, Any] = response.json()
            return body if not delivered or body["delivery"]["status"] == "delivered" else None

        return wait_for("the study result", probe, 45, every_s=0.3)

    def study_phase(self) -> None:
        """A 4-photograph study through Orthanc: one study SR that says what POST /v1/exams
        says; a fifth photograph later: a new SR that names the first as its predecessor."""
        step = time.monotonic()
        parts = study_photographs(4)
        study_uid = str(pydicom.dcmread(io.BytesIO(parts[0])).StudyInstanceUID)
        for data in parts:
            self.orthanc.upload(data)
        first = self.study(study_uid)
        sr = self.study_sr(study_uid, first["sr"]["sop_instance_uid"])
        self.timed("study_of_four", step)
        srs = self.orthanc.srs(study_uid)
        self.check("study: exactly one SR in Orthanc", len(srs) == 1, len(srs))
        said = summarize_study(sr)
        expected = self.exam(parts)
        self.report["study"] = {"sr": said, "exam_patient": expected["patient"]}
        sources = {str(pydicom.dcmread(io.BytesIO(p)).SOPInstanceUID) for p in parts}
        self.check("study SR references all four", sources <= set(said["images"]), said["images"])
        for side, eye in (("L", "left"), ("R", "right")):
            mine = eye_findings(said["eyes"].get(side))
            theirs = expected[eye]
            if theirs is not None:
                theirs = {**theirs, "gradable": theirs["quality"]["gradable"]}
            self.check(
                f"study {eye} eye = POST /v1/exams",
                mine == eye_findings(theirs),
                [mine, eye_findings(theirs)],
            )
            self.check(
                f"study {eye} eye: two photographs",
                len(said["eyes"][side]["photographs"]) == 2 == len(first[eye]["images"]),
            )
        patient = {k: expected["patient"][k] for k in said["patient"] if k != "next_step"}
        self.check(
            "study patient = POST /v1/exams",
            {k: v for k, v in said["patient"].items() if k != "next_step"} == patient,
            [said["patient"], expected["patient"]],
        )
        self.check(
            "study JSON patient = POST /v1/exams",
            {k: first["patient"][k] for k in patient} == patient,
        )
        self.check(
            "study: algorithm version", said["algorithm_version"] == str(first["model"]["version"])
        )

        step = time.monotonic()
        (fifth,) = study_photographs(5, study_uid)[4:]
        self.orthanc.upload(fifth)
        second = wait_for(
            "the replacing study SR",
            lambda: (
                (b := self.study(study_uid))["sr"]["sop_instance_uid"]
                != first["sr"]["sop_instance_uid"]
                and b
            ),
            45,
        )
        replacing = self.study_sr(study_uid, second["sr"]["sop_instance_uid"])
        self.timed("study_fifth_photograph", step)
        predecessors = [
            str(item.ReferencedSOPInstanceUID)
            for study in replacing.get("PredecessorDocumentsSequence", [])
            for series in study.ReferencedSeriesSequence
            for item in series.ReferencedSOPSequence
        ]
        self.check(
            "fifth: new SR names the first", predecessors == [str(sr.SOPInstanceUID)], predecessors
        )
        self.check("fifth: JSON sr.replaces", second["sr"]["replaces"] == str(sr.SOPInstanceUID))
        self.check("fifth: five instances", len(second["instances"]) == 5)
        self.check("fifth: the left eye has three", len(second["left"]["images"]) == 3)
