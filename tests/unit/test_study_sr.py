"""The study SR: every instance referenced, per-eye and patient findings, stable UIDs, validity."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from fundus.dicom import read_dataset
from fundus.types import ImageFormat, ImageInfo, Preprocessed, QualityReport
from gateway import clinical
from gateway.exam import EyeExam
from gateway.grading import EyeOutcome
from gateway.pacs import codes
from gateway.pacs.codes import (
    EYE,
    EYE_MISSING,
    INSUFFICIENT_QUALITY,
    PATIENT,
    PHOTOGRAPH,
    VISION_THREATENING,
)
from gateway.pacs.sr import COMPREHENSIVE_SR, SourceError, encode
from gateway.pacs.study_sr import StudyExam, build_study_sr
from synthetic import encode_dicom, synthesize_fundus
from tests.unit.test_pacs_sr import DCIODVFY, dciodvfy

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STUDY = "1.2.826.0.1.3680043.8.498.4242"
YES = (codes.YES.scheme, codes.YES.value)
needs_dciodvfy = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy is not installed")


def instance(
    seed: int, laterality: str, study: str = STUDY, patient_id: str = "SYN0001"
) -> Dataset:
    """A synthetic OP instance of ``study`` (encode_dicom derives its UIDs from the seed)."""
    image = synthesize_fundus(1, width=96, height=96, seed=seed)
    ds = read_dataset(encode_dicom(image, seed=seed, laterality=laterality, patient_id=patient_id))  # type: ignore[arg-type]
    ds.StudyInstanceUID = study
    ds.InstanceNumber = seed
    return pydicom.dcmread(io.BytesIO(encode(ds)))


def photo(grade: int | None, laterality: str) -> EyeOutcome:
    info = ImageInfo(ImageFormat.DICOM, 96, 96, 96, 96, laterality=laterality)  # type: ignore[arg-type]
    if grade is None:
        quality = QualityReport(False, 0.2, ("blurred", "too_dark"))
        return EyeOutcome(Preprocessed(np.zeros((1, 1, 3), np.uint8), quality, info), None)
    probabilities = [0.02] * 5
    probabilities[grade] = 0.92
    return EyeOutcome(
        Preprocessed(np.zeros((1, 1, 3), np.uint8), QualityReport(True, 0.9), info),
        laterality,  # type: ignore[arg-type]
        grade=grade,
        probabilities=probabilities,
        referable=grade >= 2,
        referable_probability=sum(probabilities[2:]),
    )


def exam(sources: list[Dataset], left: list[int | None], right: list[int | None]) -> StudyExam:
    """Sources: the left photographs first, then the right ones (an empty list: eye absent)."""
    uids = [str(ds.SOPInstanceUID) for ds in sources]
    left_eye = EyeExam("left", [photo(g, "L") for g in left]) if left else None
    right_eye = EyeExam("right", [photo(g, "R") for g in right]) if right else None
    referral = clinical.patient_referral(
        left_eye.finding() if left_eye else None, right_eye.finding() if right_eye else None
    )
    return StudyExam(
        model_name="dr_grader",
        model_version=3,
        left=left_eye,
        right=right_eye,
        left_uids=tuple(uids[: len(left)]),
        right_uids=tuple(uids[len(left) :]),
        referral=referral,
        comments=(clinical.DISCLAIMER,),
    )


def concept(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return str(code.CodingSchemeDesignator), str(code.CodeValue)


def coded(item: Dataset) -> tuple[str, str]:
    code = item.ConceptCodeSequence[0]
    return str(code.CodingSchemeDesignator), str(code.CodeValue)


def children(item: Dataset, code: codes.Code) -> list[Dataset]:
    return [c for c in item.get("ContentSequence", []) if concept(c) == (code.scheme, code.value)]


def read_eye(container: Dataset) -> dict[str, object]:
    """Laterality, grade, referable, vision-threatening and the photographs of one eye."""
    (side,) = children(container, codes.LATERALITY)
    out: dict[str, object] = {"side": coded(side)[1]}
    for name, code in (("referable", codes.REFERABLE_DR), ("threat", VISION_THREATENING)):
        found = children(container, code)
        out[name] = coded(found[0]) == YES if found else None
    (gradable,) = children(container, codes.GRADABLE)
    out["gradable"] = coded(gradable) == YES
    severity = children(container, codes.DIABETIC_RETINOPATHY)
    out["grade"] = (
        int(severity[0].ContentSequence[0].MeasuredValueSequence[0].NumericValue)
        if severity
        else None
    )
    photos = []
    for item in children(container, PHOTOGRAPH):
        (image,) = children(item, codes.SOURCE_IMAGE)
        grade = children(item, codes.DIABETIC_RETINOPATHY)
        photos.append(
            (
                str(image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID),
                coded(grade[0])[1] if grade else None,
            )
        )
    out["photos"] = photos
    return out


def read(sr: Dataset) -> tuple[dict[str, dict[str, object]], Dataset]:
    (findings,) = children(sr, codes.FINDINGS)
    eyes = {str(read_eye(c)["side"]): read_eye(c) for c in children(findings, EYE)}
    (patient,) = children(findings, PATIENT)
    return eyes, patient


@pytest.fixture(scope="module")
def four() -> list[Dataset]:
    """Two left, then two right photographs of one study."""
    return [instance(1, "L"), instance(2, "L"), instance(3, "R"), instance(4, "R")]


def roundtrip(ds: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(encode(ds)))


def test_two_plus_two_photographs(four: list[Dataset]) -> None:
    sr = roundtrip(build_study_sr(four, exam(four, [None, 2], [1, 3]), NOW))
    assert sr.SOPClassUID == COMPREHENSIVE_SR and sr.StudyInstanceUID == STUDY
    assert sr.VerificationFlag == "UNVERIFIED"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence
    assert len(evidence) == 1 and evidence[0].StudyInstanceUID == STUDY
    referenced = {
        (str(series.SeriesInstanceUID), str(sop.ReferencedSOPInstanceUID))
        for series in evidence[0].ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert referenced == {(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)) for ds in four}
    eyes, patient = read(sr)
    uids = [str(ds.SOPInstanceUID) for ds in four]
    right, left = eyes[codes.RIGHT.value], eyes[codes.LEFT.value]
    assert (right["grade"], right["referable"], right["threat"]) == (3, True, True)
    assert right["photos"] == [
        (uids[2], codes.SEVERITY[1].value),
        (uids[3], codes.SEVERITY[3].value),
    ]
    # The left eye: one ungradable and one gradable photograph, graded from the gradable one.
    assert (left["gradable"], left["grade"], left["referable"], left["threat"]) == (
        True,
        2,
        True,
        False,
    )
    assert left["photos"] == [(uids[0], None), (uids[1], codes.SEVERITY[2].value)]
    (next_step,) = children(patient, codes.NEXT_STEP)
    assert coded(next_step)[1] == codes.ACTIONS["refer_soon"].value
    assert coded(children(patient, VISION_THREATENING)[0]) == YES
    assert coded(children(patient, INSUFFICIENT_QUALITY)[0]) != YES
    assert children(patient, EYE_MISSING) == []
    algorithm = [str(i.TextValue) for i in sr.ContentSequence[-1].ContentSequence[:2]]
    assert algorithm == ["dr_grader", "3"]


def test_a_missing_eye_and_an_ungradable_eye(four: list[Dataset]) -> None:
    right_only = four[2:]
    sr = build_study_sr(right_only, exam(right_only, [], [None, None]), NOW)
    eyes, patient = read(sr)
    assert set(eyes) == {codes.RIGHT.value}
    right = eyes[codes.RIGHT.value]
    assert (right["gradable"], right["grade"], right["referable"], right["threat"]) == (
        False,
        None,
        None,
        None,
    )
    (missing,) = children(patient, EYE_MISSING)
    assert coded(missing) == (codes.LEFT.scheme, codes.LEFT.value)
    assert coded(children(patient, INSUFFICIENT_QUALITY)[0]) == YES
    assert coded(children(patient, codes.NEXT_STEP)[0])[1] == "A-RETAKE-REFER"


EXAMS: dict[str, tuple[int, list[int | None], list[int | None]]] = {
    "2+2": (4, [None, 2], [1, 3]),
    "right eye missing": (2, [0, 1], []),
    "ungradable left eye": (4, [None, None], [0, 4]),
    "all ungradable": (3, [None], [None, None]),
}


@needs_dciodvfy
@pytest.mark.parametrize("name", sorted(EXAMS))
def test_every_study_sr_is_valid(name: str, four: list[Dataset], tmp_path: Path) -> None:
    count, left, right = EXAMS[name]
    sources = four[:count]
    errors, warnings = dciodvfy(build_study_sr(sources, exam(sources, left, right), NOW), tmp_path)
    assert errors == []
    assert warnings == []


def test_same_instances_give_the_same_sr(four: list[Dataset]) -> None:
    first = build_study_sr(four, exam(four, [None, 2], [1, 3]), NOW)
    shuffled = [four[2], four[0], four[3], four[1], four[0]]  # order and a resent duplicate
    again = build_study_sr(
        shuffled, exam(four, [None, 2], [1, 3]), datetime(2030, 1, 1, tzinfo=UTC)
    )
    assert again.SOPInstanceUID == first.SOPInstanceUID
    assert again.SeriesInstanceUID == first.SeriesInstanceUID
    assert "PredecessorDocumentsSequence" not in first
    other_model = StudyExam(**{**exam(four, [None, 2], [1, 3]).__dict__, "model_version": 4})
    assert build_study_sr(four, other_model, NOW).SOPInstanceUID != first.SOPInstanceUID


@needs_dciodvfy
def test_an_added_instance_gives_a_new_sr_naming_the_old(
    four: list[Dataset], tmp_path: Path
) -> None:
    first = build_study_sr(four, exam(four, [None, 2], [1, 3]), NOW)
    five = [*four[:2], instance(5, "L"), *four[2:]]
    second = build_study_sr(
        five, exam(five, [None, 2, 1], [1, 3]), NOW, replaces=first.SOPInstanceUID
    )
    assert second.SOPInstanceUID != first.SOPInstanceUID
    assert second.SeriesInstanceUID == first.SeriesInstanceUID
    (predecessor,) = second.PredecessorDocumentsSequence
    assert predecessor.StudyInstanceUID == STUDY
    (series,) = predecessor.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    (sop,) = series.ReferencedSOPSequence
    assert (sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID) == (
        COMPREHENSIVE_SR,
        first.SOPInstanceUID,
    )
    eyes, _ = read(second)
    assert len(eyes[codes.LEFT.value]["photos"]) == 3  # type: ignore[arg-type]
    errors, warnings = dciodvfy(second, tmp_path)
    assert errors == [] and warnings == []


def test_sources_of_two_studies_or_patients_are_refused(four: list[Dataset]) -> None:
    stranger = instance(6, "R", study="1.2.826.0.1.3680043.8.498.99")
    mixed = [*four[:3], stranger]
    with pytest.raises(SourceError, match="2 different studies") as caught:
        build_study_sr(mixed, exam(mixed, [None, 2], [1, 3]), NOW)
    other_patient = [*four[:3], instance(7, "R", patient_id="SYN0002")]
    with pytest.raises(SourceError, match="2 different patient IDs") as named:
        build_study_sr(other_patient, exam(other_patient, [None, 2], [1, 3]), NOW)
    for error in (caught.value, named.value):
        assert "SYN" not in str(error) and "1.2." not in str(error)
    with pytest.raises(SourceError, match="not among the source instances"):
        build_study_sr(four[:3], exam(four, [None, 2], [1, 3]), NOW)


def test_patient_data_only_in_the_patient_module(
    four: list[Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sr = build_study_sr(four, exam(four, [None, 2], [1, 3]), NOW)
    data = encode(sr)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
        value = str(four[0][keyword].value)
        assert str(sr[keyword].value) == value
        assert data.count(value.encode()) == 1, keyword
        assert all(value not in record.getMessage() for record in caplog.records)
    assert caplog.records == []


def test_the_study_codes_are_private_codes_of_their_own() -> None:
    private = [code.value for code in codes.private_codes()]
    for code in codes.STUDY_CODES:
        assert code.scheme == codes.PRIVATE_SCHEME
        assert private.count(code.value) == 1
