"""The result SR: content, coding, deterministic UIDs, patient data copy, dciodvfy validity."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from fundus.dicom import read_dataset
from fundus.quality import REASONS
from gateway.clinical import action_for
from gateway.pacs import codes
from gateway.pacs.sr import (
    COMPREHENSIVE_SR,
    Finding,
    SourceError,
    build_sr,
    encode,
    sr_identity,
)
from synthetic import encode_dicom, synthesize_fundus
from tests.e2e.dicom_sr import summarize, walk

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = synthesize_fundus(2, width=128, height=128, seed=1)
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DCIODVFY = shutil.which("dciodvfy")
KNOWN_WARNINGS = (re.compile(r"Unrecognized defined term <99DRG>.*Coding Scheme Designator"),)
"""dciodvfy does not know private coding schemes; every other warning fails the test."""


def source(**kwargs: object) -> Dataset:
    return read_dataset(encode_dicom(IMAGE, **kwargs))  # type: ignore[arg-type]


def gradable(grade: int, laterality: str | None = "R") -> Finding:
    probabilities = [0.02] * 5
    probabilities[grade] = 0.92
    referable = grade >= 2
    return Finding(
        model_name="dr_grader",
        model_version=3,
        gradable=True,
        quality_score=0.87,
        reasons=(),
        action=action_for(grade, referable),
        recommendation=f"Recommendation for grade {grade}.",
        grade=grade,
        probabilities=tuple(probabilities),
        referable=referable,
        referable_probability=sum(probabilities[2:]),
        laterality=laterality,  # type: ignore[arg-type]
        comments=("Decision support only.",),
    )


def ungradable(reasons: tuple[str, ...]) -> Finding:
    return Finding(
        model_name="dr_grader",
        model_version=3,
        gradable=False,
        quality_score=0.2,
        reasons=reasons,
        action="retake_or_refer_in_person",
        recommendation="Retake the photograph.",
    )


def roundtrip(ds: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(encode(ds)))


def dciodvfy(ds: Dataset, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(errors, unexpected warnings) reported by dciodvfy for ``ds``."""
    assert DCIODVFY is not None
    path = tmp_path / "sr.dcm"
    path.write_bytes(encode(ds))
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, check=False)
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [
        line
        for line in lines
        if line.startswith("Warning") and not any(p.search(line) for p in KNOWN_WARNINGS)
    ]
    assert (run.returncode != 0) == bool(errors), lines
    return errors, warnings


FINDINGS = {
    **{f"grade-{g}": gradable(g, ("R", "L", None)[g % 3]) for g in range(5)},
    **{f"ungradable-{reason}": ungradable((reason,)) for reason in REASONS},
    "ungradable-all-reasons": ungradable(REASONS),
}
SOURCES: dict[str, dict[str, object]] = {
    "op8-explicit": {"seed": 1},
    "op16": {"seed": 2, "sop_class": "op16", "bits": 16},
    "sc-implicit-no-laterality": {
        "seed": 3,
        "sop_class": "sc",
        "transfer_syntax": "implicit_le",
        "laterality": None,
    },
    "op8-jpeg": {"seed": 4, "transfer_syntax": "jpeg_baseline"},
    "latin1-name": {"seed": 5, "patient_name": "MÜLLER^JÖRG"},
}


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian dicom3tools) is not installed")
@pytest.mark.parametrize("finding_name", sorted(FINDINGS))
def test_every_finding_is_a_valid_sr(finding_name: str, tmp_path: Path) -> None:
    errors, warnings = dciodvfy(build_sr(source(seed=7), FINDINGS[finding_name], NOW), tmp_path)
    assert errors == []
    assert warnings == []


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian dicom3tools) is not installed")
@pytest.mark.parametrize("source_name", sorted(SOURCES))
def test_every_source_kind_gives_a_valid_sr(source_name: str, tmp_path: Path) -> None:
    src = source(**SOURCES[source_name])
    for finding in (gradable(3), ungradable(("blurred",))):
        errors, warnings = dciodvfy(build_sr(src, finding, NOW), tmp_path)
        assert errors == []
        assert warnings == []


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (Debian dicom3tools) is not installed")
def test_source_without_patient_attributes_gives_a_valid_sr(tmp_path: Path) -> None:
    src = source(seed=8)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate"):
        del src[keyword]
    sr = build_sr(src, gradable(1), NOW)
    assert sr.PatientName == "" and sr.PatientID == "" and sr.StudyDate == ""
    errors, _ = dciodvfy(sr, tmp_path)
    assert errors == []


@pytest.mark.parametrize("grade", range(5))
def test_gradable_content(grade: int) -> None:
    src = source(seed=9)
    finding = gradable(grade, "L")
    summary = summarize(roundtrip(build_sr(src, finding, NOW)))
    assert summary["gradable"] is True
    assert summary["grade"] == grade
    assert summary["severity"] == (codes.SEVERITY[grade].scheme, codes.SEVERITY[grade].value)
    assert summary["referable"] is (grade >= 2)
    assert summary["laterality"] == "L"
    assert summary["reasons"] == []
    assert summary["next_step"] == codes.ACTIONS[finding.action].value
    assert summary["algorithm_name"] == "dr_grader"
    assert summary["algorithm_version"] == "3"
    assert summary["probabilities"][str(grade)] == pytest.approx(0.92)
    assert summary["images"] == [str(src.SOPInstanceUID)]


def test_ungradable_content_lists_every_reason() -> None:
    summary = summarize(roundtrip(build_sr(source(seed=10), ungradable(REASONS), NOW)))
    assert summary["gradable"] is False
    assert "grade" not in summary and "referable" not in summary
    assert summary["reasons"] == [codes.QUALITY_REASONS[r].value for r in REASONS]
    assert summary["next_step"] == "A-RETAKE-REFER"


def test_sr_sits_in_the_source_study_and_copies_patient_data() -> None:
    src = source(seed=11, patient_name="MÜLLER^JÖRG")
    sr = roundtrip(build_sr(src, gradable(2), NOW))
    assert sr.SOPClassUID == COMPREHENSIVE_SR
    assert sr.Modality == "SR"
    assert sr.StudyInstanceUID == src.StudyInstanceUID
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        assert str(sr[keyword].value) == str(src[keyword].value)
    assert str(sr.PatientName) == "MÜLLER^JÖRG"
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    assert sr.AccessionNumber == src.AccessionNumber
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == src.StudyInstanceUID
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert referenced.ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert sr.VerificationFlag == "UNVERIFIED"
    assert sr.ContentDate == "20260102" and sr.ContentTime == "030405"


def test_uids_are_deterministic_per_source_and_model_version() -> None:
    src = source(seed=12)
    first = build_sr(src, gradable(2), NOW)
    again = build_sr(src, gradable(2), datetime(2030, 1, 1, tzinfo=UTC))
    assert first.SOPInstanceUID == again.SOPInstanceUID
    assert first.SeriesInstanceUID == again.SeriesInstanceUID
    newer = Finding(**{**gradable(2).__dict__, "model_version": 4})
    assert build_sr(src, newer, NOW).SOPInstanceUID != first.SOPInstanceUID
    other = build_sr(source(seed=13), gradable(2), NOW)
    assert other.SOPInstanceUID != first.SOPInstanceUID
    identity = sr_identity(str(src.SOPInstanceUID), str(src.StudyInstanceUID), "dr_grader", 3)
    assert identity.sop_instance_uid == first.SOPInstanceUID
    for uid in (first.SOPInstanceUID, first.SeriesInstanceUID):
        assert uid.startswith("2.25.") and len(uid) <= 64 and uid.is_valid


def test_one_sr_series_per_study_and_model_version() -> None:
    src = source(seed=14)
    other_eye = source(seed=14, laterality="L")
    other_eye.SOPInstanceUID = "1.2.3.4.5"
    first = build_sr(src, gradable(1), NOW)
    second = build_sr(other_eye, gradable(1, "L"), NOW)
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID


def test_source_without_uids_is_refused_without_quoting_values() -> None:
    src = source(seed=15)
    del src.StudyInstanceUID
    with pytest.raises(SourceError, match="no StudyInstanceUID") as caught:
        build_sr(src, gradable(1), NOW)
    assert "SYN" not in str(caught.value)


def test_private_coding_scheme_is_identified() -> None:
    sr = build_sr(source(seed=16), gradable(1), NOW)
    scheme = sr.CodingSchemeIdentificationSequence[0]
    assert scheme.CodingSchemeDesignator == codes.PRIVATE_SCHEME
    used = {
        (item.ConceptNameCodeSequence[0].CodingSchemeDesignator)
        for item in walk(sr)
        if "ConceptNameCodeSequence" in item
    }
    assert used <= {"DCM", "SCT", codes.PRIVATE_SCHEME}


def test_codes_fit_their_value_representations() -> None:
    everything = [
        value for value in vars(codes).values() if isinstance(value, codes.Code)
    ] + codes.private_codes()
    for code in everything:
        assert 0 < len(code.value) <= 16, code
        assert 0 < len(code.meaning) <= 64, code
    private = [code.value for code in codes.private_codes()]
    assert len(private) == len(set(private))
    assert set(codes.QUALITY_REASONS) == set(REASONS)


def test_every_private_code_is_documented_for_hospital_it() -> None:
    readme = (REPO_ROOT / "docs" / "pacs.md").read_text()
    for code in codes.private_codes():
        assert f"`{code.value}`" in readme, code
