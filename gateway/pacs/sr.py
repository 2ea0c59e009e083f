"""The result object: a DICOM Comprehensive SR in the source image's study, in a new series.

Content tree (codes in gateway.pacs.codes, documented in docs/pacs.md)::

    CONTAINER  99DRG DRG-REPORT "Diabetic retinopathy AI grading report"
      HAS OBS CONTEXT  CODE   DCM 121005 Observer Type = DCM 121007 Device
      HAS OBS CONTEXT  UIDREF DCM 121012 Device Observer UID
      HAS OBS CONTEXT  TEXT   DCM 121013/121014/121015 Device Observer Name/Manufacturer/Model
      CONTAINS         IMAGE  DCM 121324 Source image -> the graded photograph
      CONTAINS         CONTAINER DCM 121070 Findings
        HAS CONCEPT MOD  TEXT DCM 111001 Algorithm Name, DCM 111003 Algorithm Version
        HAS CONCEPT MOD  CODE SCT 272741003 Laterality = SCT Right/Left (when known)
        CONTAINS  CODE 99DRG GRADABLE = SCT Yes/No
                    HAS PROPERTIES NUM 99DRG QUALITY-SCORE
                    HAS PROPERTIES CODE 99DRG UNGRADABLE-RSN (one per reason, when ungradable)
                    INFERRED FROM IMAGE -> the graded photograph
        CONTAINS  CODE SCT 4855003 Diabetic retinopathy = severity (gradable only)
                    HAS PROPERTIES NUM 99DRG ICDR-GRADE, P-GRADE, P-ICDR-0..4
        CONTAINS  CODE 99DRG REFERABLE-DR = SCT Yes/No (gradable only)
                    HAS PROPERTIES NUM 99DRG P-REFERABLE
        CONTAINS  CODE 99DRG NEXT-STEP = 99DRG A-... (the clinical action)
        CONTAINS  TEXT DCM 121075 Recommendation
        CONTAINS  TEXT DCM 121106 Comment (decision-support disclaimer, model warnings)

UIDs derive from the source SOP Instance UID and the model name/version only, so a resend of
the same instance yields the same SR (idempotent in the PACS). Patient and study attributes are
copied from the source dataset; this module never logs and its errors never quote values.
"""

from __future__ import annotations

import copy
import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from fundus.types import Laterality
from gateway.clinical import Action
from gateway.pacs import codes
from gateway.pacs.codes import Code

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
MANUFACTURER = "DR grading gateway"
SERIES_NUMBER = 7001
SERIES_DESCRIPTION = "DR grading (AI decision support)"
_UID_NAMESPACE = uuid.UUID("1b0c8f0e-5a43-4c1e-9a57-6f4d7b2b9d01")
"""Namespace of every UID this gateway derives (never change it: resends must match)."""

_PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
_STUDY = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
_OPTIONAL = (
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "OtherPatientIDsSequence",
    "PatientAge",
    "StudyDescription",
    "IssuerOfAccessionNumberSequence",
)
"""Copied when present; the Type 2 attributes above are copied or sent empty."""
COPIED_ATTRIBUTES = (*_PATIENT, *_STUDY, *_OPTIONAL)
"""Every source attribute the SR carries (part of an instance's content digest)."""
COPIED_SEQUENCES = tuple(keyword for keyword in _OPTIONAL if keyword.endswith("Sequence"))


class SourceError(ValueError):
    """The source dataset lacks what the SR must reference (message quotes no values)."""


@dataclass(frozen=True)
class Finding:
    """What the SR says about one photograph; no patient data."""

    model_name: str
    model_version: int
    gradable: bool
    quality_score: float
    reasons: tuple[str, ...]
    action: Action
    recommendation: str
    grade: int | None = None
    probabilities: tuple[float, ...] | None = None
    referable: bool | None = None
    referable_probability: float | None = None
    laterality: Laterality | None = None
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class SrIdentity:
    """The UIDs of the SR derived for one source instance and model version."""

    sop_instance_uid: str
    series_instance_uid: str


def derived_uid(*parts: str) -> str:
    """A deterministic UUID-derived UID (``2.25.<uuid5 as integer>``, at most 44 characters)."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, '|'.join(parts)).int}"


IMPLEMENTATION_CLASS_UID = derived_uid("implementation", MANUFACTURER)
"""Names this implementation in the File Meta Information."""


def sr_identity(
    source_sop_uid: str, study_uid: str, model_name: str, model_version: int
) -> SrIdentity:
    """SR instance UID per (source instance, model version); one SR series per study and model."""
    version = str(model_version)
    return SrIdentity(
        sop_instance_uid=derived_uid("sr-instance", source_sop_uid, model_name, version),
        series_instance_uid=derived_uid("sr-series", study_uid, model_name, version),
    )


def _uid(ds: Dataset, keyword: str) -> str:
    value = str(ds.get(keyword, "") or "").strip()
    if not value:
        meta = getattr(ds, "file_meta", None)
        meta_keyword = {
            "SOPClassUID": "MediaStorageSOPClassUID",
            "SOPInstanceUID": "MediaStorageSOPInstanceUID",
        }.get(keyword)
        if meta is not None and meta_keyword:
            value = str(meta.get(meta_keyword, "") or "").strip()
    if not value:
        raise SourceError(f"the source instance has no {keyword}")
    return value


def source_uids(ds: Dataset) -> tuple[str, str, str, str]:
    """(SOP Class, SOP Instance, Study Instance, Series Instance) UIDs of the source."""
    return (
        _uid(ds, "SOPClassUID"),
        _uid(ds, "SOPInstanceUID"),
        _uid(ds, "StudyInstanceUID"),
        _uid(ds, "SeriesInstanceUID"),
    )


def build_sr(source: Dataset, finding: Finding, created: datetime) -> Dataset:
    """The Comprehensive SR dataset (with file meta) for ``finding`` about ``source``."""
    sop_class, sop_uid, study_uid, series_uid = source_uids(source)
    identity = sr_identity(sop_uid, study_uid, finding.model_name, finding.model_version)
    created = created.astimezone(UTC)
    date, time = created.strftime("%Y%m%d"), created.strftime("%H%M%S")

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8 whatever the source used
    ds.SOPClassUID = COMPREHENSIVE_SR
    ds.SOPInstanceUID = identity.sop_instance_uid
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = time
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.CodingSchemeIdentificationSequence = [_private_scheme()]
    _copy_patient_and_study(source, ds)
    ds.StudyInstanceUID = study_uid
    ds.Modality = "SR"
    ds.SeriesInstanceUID = identity.series_instance_uid
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.SeriesDate = date
    ds.SeriesTime = time
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = finding.model_name[:64]
    ds.SoftwareVersions = f"{finding.model_name} {finding.model_version}"[:64]
    ds.InstanceNumber = _instance_number(source)
    ds.ContentDate = date
    ds.ContentTime = time
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = Sequence()
    ds.CurrentRequestedProcedureEvidenceSequence = [
        _evidence(study_uid, series_uid, sop_class, sop_uid)
    ]

    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code(codes.REPORT)]
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = [
        *_observer_context(finding),
        _image("CONTAINS", codes.SOURCE_IMAGE, sop_class, sop_uid),
        _container("CONTAINS", codes.FINDINGS, _findings(finding, sop_class, sop_uid)),
    ]

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(COMPREHENSIVE_SR)
    meta.MediaStorageSOPInstanceUID = UID(identity.sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = "DRG_GATEWAY_1"
    ds.file_meta = meta
    return ds


def encode(ds: Dataset) -> bytes:
    """DICOM Part 10 bytes (preamble, file meta, Explicit VR Little Endian)."""
    buffer = io.BytesIO()
    ds.preamble = b"\x00" * 128
    dcmwrite(buffer, ds, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return buffer.getvalue()


def _copy_patient_and_study(source: Dataset, ds: Dataset) -> None:
    for keyword in (*_PATIENT, *_STUDY):
        if keyword in source:
            ds[keyword] = copy.deepcopy(source[keyword])
        else:
            setattr(ds, keyword, "")
    for keyword in _OPTIONAL:
        if keyword in source:
            ds[keyword] = copy.deepcopy(source[keyword])


def _instance_number(source: Dataset) -> int:
    try:
        number = int(source.get("InstanceNumber", 1) or 1)
    except (TypeError, ValueError):
        return 1
    return number if 0 < number < 2**31 else 1


def _private_scheme() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = codes.PRIVATE_SCHEME
    item.CodingSchemeName = codes.PRIVATE_SCHEME_NAME
    item.CodingSchemeVersion = codes.PRIVATE_SCHEME_VERSION
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    return item


def _evidence(study_uid: str, series_uid: str, sop_class: str, sop_uid: str) -> Dataset:
    sop = Dataset()
    sop.ReferencedSOPClassUID = sop_class
    sop.ReferencedSOPInstanceUID = sop_uid
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ReferencedSOPSequence = [sop]
    study = Dataset()
    study.StudyInstanceUID = study_uid
    study.ReferencedSeriesSequence = [series]
    return study


def _observer_context(finding: Finding) -> list[Dataset]:
    device_uid = derived_uid("device", MANUFACTURER, finding.model_name)
    return [
        _code_item("HAS OBS CONTEXT", codes.OBSERVER_TYPE, codes.DEVICE),
        _uidref("HAS OBS CONTEXT", codes.DEVICE_OBSERVER_UID, device_uid),
        _text("HAS OBS CONTEXT", codes.DEVICE_OBSERVER_NAME, MANUFACTURER),
        _text("HAS OBS CONTEXT", codes.DEVICE_OBSERVER_MANUFACTURER, MANUFACTURER),
        _text("HAS OBS CONTEXT", codes.DEVICE_OBSERVER_MODEL_NAME, finding.model_name),
    ]


def _findings(finding: Finding, sop_class: str, sop_uid: str) -> list[Dataset]:
    items = [
        _text("HAS CONCEPT MOD", codes.ALGORITHM_NAME, finding.model_name),
        _text("HAS CONCEPT MOD", codes.ALGORITHM_VERSION, str(finding.model_version)),
    ]
    if finding.laterality is not None:
        side = codes.RIGHT if finding.laterality == "R" else codes.LEFT
        items.append(_code_item("HAS CONCEPT MOD", codes.LATERALITY, side))

    quality = [_num("HAS PROPERTIES", codes.QUALITY_SCORE, finding.quality_score, codes.NO_UNITS)]
    if not finding.gradable:
        quality += [
            _code_item("HAS PROPERTIES", codes.UNGRADABLE_REASON, codes.QUALITY_REASONS[reason])
            for reason in finding.reasons
            if reason in codes.QUALITY_REASONS
        ]
    quality.append(_image("INFERRED FROM", codes.SOURCE_IMAGE, sop_class, sop_uid))
    gradable = codes.YES if finding.gradable else codes.NO
    items.append(_code_item("CONTAINS", codes.GRADABLE, gradable, quality))

    if finding.gradable and finding.grade is not None:
        properties = [_num("HAS PROPERTIES", codes.ICDR_GRADE, finding.grade, codes.GRADE_UNITS)]
        if finding.probabilities is not None:
            properties.append(
                _num(
                    "HAS PROPERTIES",
                    codes.GRADE_PROBABILITY,
                    finding.probabilities[finding.grade],
                    codes.NO_UNITS,
                )
            )
            properties += [
                _num("HAS PROPERTIES", concept, probability, codes.NO_UNITS)
                for concept, probability in zip(
                    codes.GRADE_PROBABILITIES, finding.probabilities, strict=True
                )
            ]
        severity = codes.SEVERITY[finding.grade]
        items.append(
            _code_item("CONTAINS", codes.DIABETIC_RETINOPATHY, severity, properties),
        )
    if finding.gradable and finding.referable is not None:
        referable_props = []
        if finding.referable_probability is not None:
            referable_props.append(
                _num(
                    "HAS PROPERTIES",
                    codes.REFERABLE_PROBABILITY,
                    finding.referable_probability,
                    codes.NO_UNITS,
                )
            )
        answer = codes.YES if finding.referable else codes.NO
        items.append(_code_item("CONTAINS", codes.REFERABLE_DR, answer, referable_props))

    items.append(_code_item("CONTAINS", codes.NEXT_STEP, codes.ACTIONS[finding.action]))
    items.append(_text("CONTAINS", codes.RECOMMENDATION, finding.recommendation))
    items += [_text("CONTAINS", codes.COMMENT, comment) for comment in finding.comments]
    return items


def _code(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme
    item.CodeMeaning = code.meaning
    return item


def _item(relationship: str, value_type: str, concept: Code) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code(concept)]
    return item


def _with_children(item: Dataset, children: Iterable[Dataset]) -> Dataset:
    children = list(children)
    if children:
        item.ContentSequence = children
    return item


def _text(relationship: str, concept: Code, value: str) -> Dataset:
    item = _item(relationship, "TEXT", concept)
    item.TextValue = value
    return item


def _uidref(relationship: str, concept: Code, value: str) -> Dataset:
    item = _item(relationship, "UIDREF", concept)
    item.UID = value
    return item


def _code_item(
    relationship: str, concept: Code, value: Code, children: Iterable[Dataset] = ()
) -> Dataset:
    item = _item(relationship, "CODE", concept)
    item.ConceptCodeSequence = [_code(value)]
    return _with_children(item, children)


def _num(relationship: str, concept: Code, value: float, units: Code) -> Dataset:
    measured = Dataset()
    measured.NumericValue = _decimal_string(value)
    measured.MeasurementUnitsCodeSequence = [_code(units)]
    item = _item(relationship, "NUM", concept)
    item.MeasuredValueSequence = [measured]
    return item


def _decimal_string(value: float) -> str:
    """At most 16 characters (VR DS): integers as such, fractions with 6 decimals."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0")


def _image(relationship: str, concept: Code, sop_class: str, sop_uid: str) -> Dataset:
    reference = Dataset()
    reference.ReferencedSOPClassUID = sop_class
    reference.ReferencedSOPInstanceUID = sop_uid
    item = _item(relationship, "IMAGE", concept)
    item.ReferencedSOPSequence = [reference]
    return item


def _container(relationship: str, concept: Code, children: Iterable[Dataset]) -> Dataset:
    item = _item(relationship, "CONTAINER", concept)
    item.ContinuityOfContent = "SEPARATE"
    return _with_children(item, children)
