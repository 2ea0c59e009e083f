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
    """What a study SR eye and a POST /v1/exams eye must agree on (probabilities to 1e-6)."""
    if eye is None:
        return None
    out = {k: eye.get(k) for k in ("grade", "referable", "gradable", "vision_threatening")}
    out["deciding"] = eye.get("deciding")
    out["referable_probability"] = _rounded(eye.get("referable_probability"))
    out["probabilities"] = {k: _rounded(v) for k, v in (eye.get("probabilities") or {}).items()}
    return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 5)


def sop_uid(data: bytes) -> str:
    """The SOP Instance UID of a Part 10 instance."""
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


def laterality(data: bytes) -> str:
    """ImageLaterality of a Part 10 instance."""
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).ImageLaterality)


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
            field = "left" if laterality(data) == "L" else "right"
            files.append((field, ("p.dcm", data, "application/dicom")))
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

    def compare(
        self, name: str, sr: pydicom.Dataset, parts: list[bytes], study: dict[str, Any]
    ) -> dict[str, Any]:
        """Check that the study SR says what POST /v1/exams says on ``parts``, sent in the
        order the study holds them (GET /v1/studies ``instances``: ties between photographs
        of an eye go to the first); return the SR's summary."""
        said = summarize_study(sr)
        place = {i["sop_instance_uid"]: (i["eye"], i["image_index"]) for i in study["instances"]}
        self.check(f"{name}: study holds every photograph", set(place) == set(map(sop_uid, parts)))
        parts = sorted(parts, key=lambda p: place.get(sop_uid(p), ("", 0)))
        self.check(
            f"{name}: eye from ImageLaterality",
            all(place[sop_uid(p)][0] == {"L": "left", "R": "right"}[laterality(p)] for p in parts),
        )
        expected = self.exam(parts)
        sources = sorted(sop_uid(p) for p in parts)
        self.check(f"{name}: SR references every photograph", said["images"] == sources)
        for side, field in (("L", "left"), ("R", "right")):
            eye_parts = [p for p in parts if laterality(p) == side]
            mine = said["eyes"].get(side)
            if mine is not None:
                # The eye's own IMAGE item (DECIDING-IMAGE) names the deciding photograph.
                mine = {**mine, "deciding": mine["images"][0] if mine["images"] else None}
            theirs = expected[field]
            if theirs is not None:
                index = theirs["deciding_image"]
                deciding = sop_uid(eye_parts[index]) if index is not None else None
                theirs = {**theirs, "gradable": theirs["quality"]["gradable"], "deciding": deciding}
            self.check(
                f"{name}: {field} eye = POST /v1/exams",
                theirs is not None and eye_findings(mine) == eye_findings(theirs),
                [eye_findings(mine), eye_findings(theirs)],
            )
            photos = said["eyes"].get(side, {}).get("photographs", [])
            self.check(
                f"{name}: {field} eye photographs in the order sent",
                [photo["images"] for photo in photos] == [[sop_uid(p)] for p in eye_parts],
            )
        keys = ("referable", "vision_threatening", "insufficient_quality", "missing_eyes")
        mine_patient = {k: said["patient"][k] for k in keys}
        theirs_patient = {k: expected["patient"][k] for k in keys}
        self.check(
            f"{name}: patient = POST /v1/exams",
            mine_patient == theirs_patient,
            [mine_patient, theirs_patient],
        )
        self.report["study"][name] = {"sr": said, "exam_patient": expected["patient"]}
        return said

    def study_phase(self) -> None:
        """A 4-photograph study through Orthanc: one study SR that says what POST /v1/exams
        says; a fifth photograph later: a new SR that names the first as its predecessor."""
        self.report["study"] = {}
        step = time.monotonic()
        parts = study_photographs(4)
        study_uid = str(pydicom.dcmread(io.BytesIO(parts[0])).StudyInstanceUID)
        self.check("study: L, L, R, R", [laterality(p) for p in parts] == ["L", "L", "R", "R"])
        for data in parts:
            self.orthanc.upload(data)
        first = self.study(study_uid)
        sr = self.study_sr(study_uid, first["sr"]["sop_instance_uid"])
        self.timed("study_of_four", step)
        srs = [pydicom.dcmread(io.BytesIO(data)) for data in self.orthanc.srs(study_uid)]
        self.check("study: exactly one SR in Orthanc", len(srs) == 1, len(srs))
        self.check(
            "study: GET /v1/studies sr = the SR in Orthanc",
            [str(ds.SOPInstanceUID) for ds in srs] == [first["sr"]["sop_instance_uid"]],
            [first["sr"], [str(ds.SOPInstanceUID) for ds in srs]],
        )
        self.check("study: delivered", first["delivery"]["status"] == "delivered")
        self.check("study: first SR replaces nothing", first["sr"]["replaces"] is None)
        self.check("study: four instances", len(first["instances"]) == 4)
        said = self.compare("study", sr, parts, first)
        exam_patient = self.report["study"]["study"]["exam_patient"]
        self.check(
            "study JSON patient = POST /v1/exams",
            {k: first["patient"][k] for k in said["patient"] if k != "next_step"}
            == {k: exam_patient[k] for k in said["patient"] if k != "next_step"},
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
        self.check("fifth: delivered", second["delivery"]["status"] == "delivered")
        self.check("fifth: five instances", len(second["instances"]) == 5)
        self.check("fifth: the left eye has three", len(second["left"]["images"]) == 3)
        self.compare("fifth", replacing, [*parts, fifth], second)
