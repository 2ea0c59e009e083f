"""A PACS study as one screening exam: its instances' stored results -> eyes, patient decision,
the JSON document of ``GET /v1/studies/{uid}`` and the study SR (``gateway.pacs.study_sr``).

Every instance of the study is read back from its stored entry (``StoredPhoto``), also those
graded in this request, so the SR and the JSON say exactly the same rounded figures whichever
request added the last instance. Photographs are grouped by the eye their DICOM
ImageLaterality names, in the order received; the eye and patient rules are ``gateway.exam``'s
and ``gateway.clinical``'s, the same as ``POST /v1/exams``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset

from gateway import clinical
from gateway.exam import Eye, EyeExam, StoredPhoto
from gateway.pacs import sr
from gateway.pacs.study_sr import StudyExam, build_study_sr
from gateway.results import exam_eye_result, patient_result
from gateway.store.studies import StudyDraft

EYES: tuple[Eye, ...] = ("left", "right")


def patient_digest(study_uid: str, source: Dataset) -> str:
    """SHA-256 of the study UID and the Patient ID: compares patients, names none."""
    patient_id = str(source.get("PatientID", "") or "").strip()
    return hashlib.sha256(f"{study_uid}\0{patient_id}".encode()).hexdigest()


@dataclass(frozen=True)
class StudyComposer:
    """Builds a study's exam document and SR from its entries (the store's ``Compose``).

    ``patient_source``: an instance of the study received in this request; the SR copies its
    patient and study attributes (the others share them: the patient digest checked that).
    """

    study_uid: str
    patient_source: Dataset
    model_name: str
    model_version: int
    model_warning: str | None
    created: datetime

    def __call__(self, entries: list[dict[str, Any]], replaces: str | None) -> StudyDraft:
        """The study's exam JSON, and its SR encoded (runs in a store thread)."""
        eyes = eyes_of(entries)
        left, right = eyes["left"], eyes["right"]
        referral = clinical.patient_referral(
            left.finding() if left else None, right.finding() if right else None
        )
        comments = [clinical.DISCLAIMER]
        if self.model_warning:
            comments.append(self.model_warning)
        exam = StudyExam(
            model_name=self.model_name,
            model_version=self.model_version,
            left=left,
            right=right,
            left_uids=_uids(entries, "left"),
            right_uids=_uids(entries, "right"),
            referral=referral,
            comments=tuple(comments),
        )
        sources = [self.patient_source, *self._references(entries)]
        dataset = build_study_sr(sources, exam, self.created, replaces)
        document = {
            "request_id": self.study_uid,  # what the FHIR Bundle calls the exam
            "study_instance_uid": self.study_uid,
            "model": {"name": self.model_name, "version": self.model_version},
            "left": exam_eye_result(left).model_dump(mode="json") if left else None,
            "right": exam_eye_result(right).model_dump(mode="json") if right else None,
            "patient": patient_result(left, right).model_dump(mode="json"),
            "instances": [_instance(entry, entries) for entry in entries],
            "sr": {
                "sop_class_uid": sr.COMPREHENSIVE_SR,
                "sop_instance_uid": str(dataset.SOPInstanceUID),
                "series_instance_uid": str(dataset.SeriesInstanceUID),
                "replaces": replaces,
            },
            "model_warning": self.model_warning,
            "updated_at": self.created.isoformat(timespec="seconds"),
        }
        return StudyDraft(str(dataset.SOPInstanceUID), sr.encode(dataset), document)

    def _references(self, entries: Sequence[dict[str, Any]]) -> list[Dataset]:
        """The instances received earlier, known by their UIDs only."""
        known = sr.source_uids(self.patient_source)[1]  # may come from the file meta only
        references = []
        for entry in entries:
            if entry["sop_instance_uid"] == known:
                continue
            ds = Dataset()
            ds.SOPClassUID = entry["sop_class_uid"]
            ds.SOPInstanceUID = entry["sop_instance_uid"]
            ds.StudyInstanceUID = self.study_uid
            ds.SeriesInstanceUID = entry["series_instance_uid"]
            ds.PatientID = self.patient_source.get("PatientID", "")
            references.append(ds)
        return references


def eyes_of(entries: Sequence[dict[str, Any]]) -> dict[Eye, EyeExam | None]:
    """Each eye's photographs in the order received (None: no photograph of that eye)."""
    found: dict[Eye, EyeExam | None] = {}
    for eye in EYES:
        photos = [StoredPhoto.from_result(e["result"]) for e in entries if e["eye"] == eye]
        found[eye] = EyeExam(eye, photos) if photos else None
    return found


def _uids(entries: Sequence[dict[str, Any]], eye: Eye) -> tuple[str, ...]:
    return tuple(e["sop_instance_uid"] for e in entries if e["eye"] == eye)


def _instance(entry: dict[str, Any], entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Where an instance sits in the exam: its eye and its index in that eye's images."""
    same_eye = [e["sop_instance_uid"] for e in entries if e["eye"] == entry["eye"]]
    return {
        "sop_instance_uid": entry["sop_instance_uid"],
        "sop_class_uid": entry["sop_class_uid"],
        "series_instance_uid": entry["series_instance_uid"],
        "eye": entry["eye"],
        "image_index": same_eye.index(entry["sop_instance_uid"]),
        "model": entry["model"],
    }
