"""One Comprehensive SR per PACS study: the exam result, in the spirit of IHE AI Results.

Built by gateway.pacs.study (the intake's composer) for every study. Content tree, reusing the
items and codes of gateway.pacs.sr (the per-instance SR)::

    CONTAINER  99DRG DRG-EXAM-REPORT "Diabetic retinopathy AI screening exam report"
      HAS OBS CONTEXT  Observer Type = Device, Device Observer UID/Name/Manufacturer/Model
      CONTAINS  IMAGE DCM 121324 Source image (one per source instance)
      CONTAINS  CONTAINER DCM 121070 Findings
        HAS CONCEPT MOD  TEXT DCM 111001 Algorithm Name, DCM 111003 Algorithm Version
        CONTAINS  CONTAINER 99DRG codes.EYE (right, then left; absent eyes left out)
          HAS CONCEPT MOD  CODE SCT 272741003 Laterality = SCT Right/Left
          CONTAINS  the eye's GRADABLE / severity / REFERABLE-DR / NEXT-STEP / Recommendation,
                    as the per-instance SR says them, from the photograph that decides the eye
          CONTAINS  CODE 99DRG VISION-THREAT = SCT Yes/No (gradable eyes)
          CONTAINS  IMAGE 99DRG DECIDING-IMAGE -> the deciding photograph (gradable eyes)
          CONTAINS  CONTAINER 99DRG codes.PHOTOGRAPH (one per photograph, in the order sent)
            CONTAINS  IMAGE DCM 121324 Source image
            CONTAINS  GRADABLE (quality score, reasons) / severity / REFERABLE-DR / NEXT-STEP /
                      Recommendation of that photograph
        CONTAINS  CONTAINER 99DRG codes.PATIENT
          CONTAINS  CODE 99DRG NEXT-STEP, TEXT DCM 121075 Recommendation (the summary)
          CONTAINS  CODE 99DRG REFERABLE-DR, VISION-THREAT, INSUFF-QUALITY = SCT Yes/No
          CONTAINS  CODE 99DRG codes.EYE-MISSING = SCT Right/Left (one per eye not examined)
        CONTAINS  TEXT DCM 121106 Comment (disclaimer, model warnings)

The SOP Instance UID derives from the study, the model name/version and the sorted source SOP
Instance UIDs: the same instances give the same SR, an added instance a new one, which names
the SR it replaces in the Predecessor Documents Sequence. The series is the per-instance SRs'
series of the study and model. Patient and study attributes are copied from the first source;
this module never logs and its errors never quote values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from gateway.clinical import PatientReferral
from gateway.exam import EyeExam, Photo
from gateway.pacs import codes
from gateway.pacs.sr import (
    COMPREHENSIVE_SR,
    IMPLEMENTATION_CLASS_UID,
    MANUFACTURER,
    SERIES_DESCRIPTION,
    SERIES_NUMBER,
    Finding,
    SourceError,
    _code,
    _code_item,
    _container,
    _copy_patient_and_study,
    _evidence,
    _findings,
    _image,
    _private_scheme,
    _text,
    _uidref,
    derived_uid,
    source_uids,
    sr_identity,
)

_ALGORITHM = (codes.ALGORITHM_NAME, codes.ALGORITHM_VERSION)


@dataclass(frozen=True)
class StudyExam:
    """What the study SR says: the graded eyes, their photographs' instances, the decision.

    ``left_uids``/``right_uids``: the SOP Instance UID of each photograph of that eye, in the
    order of ``EyeExam.images``; every one must be among the sources given to the builder.
    """

    model_name: str
    model_version: int
    left: EyeExam | None
    right: EyeExam | None
    left_uids: tuple[str, ...]
    right_uids: tuple[str, ...]
    referral: PatientReferral
    comments: tuple[str, ...] = ()

    def eyes(self) -> list[tuple[EyeExam, tuple[str, ...]]]:
        """(eye, its photographs' UIDs), right eye first; absent eyes left out."""
        pairs = ((self.right, self.right_uids), (self.left, self.left_uids))
        found = []
        for eye, uids in pairs:
            if eye is None:
                continue
            if len(uids) != len(eye.images):
                raise ValueError(f"the {eye.eye} eye has {len(eye.images)} photographs")
            found.append((eye, uids))
        if not found:
            raise ValueError("a study exam needs at least one eye")
        return found


def study_sr_uid(study_uid: str, model_name: str, model_version: int, sop_uids: list[str]) -> str:
    """The SOP Instance UID of the study SR for this set of source instances and model."""
    return derived_uid("study-sr", study_uid, model_name, str(model_version), *sorted(sop_uids))


def build_study_sr(
    sources: list[Dataset], exam: StudyExam, created: datetime, replaces: str | None = None
) -> Dataset:
    """The study's Comprehensive SR (with file meta); ``replaces``: the SR it supersedes."""
    instances, study_uid = _check_sources(sources)
    classes = {sop_uid: uids[0] for sop_uid, uids in instances.items()}
    eyes = exam.eyes()
    for _, uids in eyes:
        if any(uid not in classes for uid in uids):
            raise SourceError("a graded photograph is not among the source instances")
    sop_uids = sorted(instances)
    sop_instance_uid = study_sr_uid(study_uid, exam.model_name, exam.model_version, sop_uids)
    series_uid = sr_identity(
        sop_uids[0], study_uid, exam.model_name, exam.model_version
    ).series_instance_uid
    created = created.astimezone(UTC)
    date, time = created.strftime("%Y%m%d"), created.strftime("%H%M%S")

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = COMPREHENSIVE_SR
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = time
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.CodingSchemeIdentificationSequence = [_private_scheme()]
    _copy_patient_and_study(sources[0], ds)
    ds.StudyInstanceUID = study_uid
    ds.Modality = "SR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.SeriesDate = date
    ds.SeriesTime = time
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = exam.model_name[:64]
    ds.SoftwareVersions = f"{exam.model_name} {exam.model_version}"[:64]
    ds.InstanceNumber = len(sop_uids)  # grows with each replacement of the study's SR
    ds.ContentDate = date
    ds.ContentTime = time
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = []
    if replaces is not None:
        ds.PredecessorDocumentsSequence = [
            _evidence(study_uid, series_uid, COMPREHENSIVE_SR, replaces)
        ]
    ds.CurrentRequestedProcedureEvidenceSequence = [_all_evidence(study_uid, instances)]

    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code(codes.EXAM_REPORT)]
    ds.ContinuityOfContent = "SEPARATE"
    findings = [
        _text("HAS CONCEPT MOD", codes.ALGORITHM_NAME, exam.model_name),
        _text("HAS CONCEPT MOD", codes.ALGORITHM_VERSION, str(exam.model_version)),
        *(_eye(exam, eye, uids, classes) for eye, uids in eyes),
        _patient(exam.referral),
        *(_text("CONTAINS", codes.COMMENT, comment) for comment in exam.comments),
    ]
    ds.ContentSequence = [
        *_observer_context(exam.model_name),
        *(_image("CONTAINS", codes.SOURCE_IMAGE, classes[uid], uid) for uid in sop_uids),
        _container("CONTAINS", codes.FINDINGS, findings),
    ]

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(COMPREHENSIVE_SR)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = "DRG_GATEWAY_1"
    ds.file_meta = meta
    return ds


def _check_sources(sources: Sequence[Dataset]) -> tuple[dict[str, tuple[str, str]], str]:
    """{SOP Instance UID: (SOP Class, Series)} of the distinct sources, and their study."""
    if not sources:
        raise SourceError("a study SR needs at least one source instance")
    instances: dict[str, tuple[str, str]] = {}
    studies: set[str] = set()
    patients: set[str] = set()
    for source in sources:
        sop_class, sop_uid, study_uid, series_uid = source_uids(source)
        instances[sop_uid] = (sop_class, series_uid)
        studies.add(study_uid)
        patients.add(str(source.get("PatientID", "") or "").strip())
    if len(studies) > 1:
        raise SourceError(f"the source instances belong to {len(studies)} different studies")
    if len(patients) > 1:
        raise SourceError(f"the source instances name {len(patients)} different patient IDs")
    return instances, studies.pop()


def _all_evidence(study_uid: str, instances: dict[str, tuple[str, str]]) -> Dataset:
    """One study item, one series item per source series, every instance once."""
    study: Dataset | None = None
    by_series: dict[str, Dataset] = {}
    for sop_uid in sorted(instances):
        sop_class, series_uid = instances[sop_uid]
        if study is None:
            study = _evidence(study_uid, series_uid, sop_class, sop_uid)
            by_series[series_uid] = study.ReferencedSeriesSequence[0]
        elif series_uid not in by_series:
            series = _evidence(study_uid, series_uid, sop_class, sop_uid).ReferencedSeriesSequence
            study.ReferencedSeriesSequence.append(series[0])
            by_series[series_uid] = series[0]
        else:
            item = Dataset()
            item.ReferencedSOPClassUID = sop_class
            item.ReferencedSOPInstanceUID = sop_uid
            by_series[series_uid].ReferencedSOPSequence.append(item)
    assert study is not None
    return study


def _observer_context(model_name: str) -> list[Dataset]:
    """The device observer, as the per-instance SR names it (same Device Observer UID)."""
    return [
        _code_item("HAS OBS CONTEXT", codes.OBSERVER_TYPE, codes.DEVICE),
        _uidref(
            "HAS OBS CONTEXT",
            codes.DEVICE_OBSERVER_UID,
            derived_uid("device", MANUFACTURER, model_name),
        ),
        _text("HAS OBS CONTEXT", codes.DEVICE_OBSERVER_NAME, MANUFACTURER),
        _text("HAS OBS CONTEXT", codes.DEVICE_OBSERVER_MANUFACTURER, MANUFACTURER),
        _text("HAS OBS CONTEXT", codes.DEVICE_OBSERVER_MODEL_NAME, model_name),
    ]


def _photo_finding(exam: StudyExam, image: Photo) -> Finding:
    quality = image.quality
    return Finding(
        model_name=exam.model_name,
        model_version=exam.model_version,
        gradable=quality.gradable and image.grade is not None,
        quality_score=float(quality.score),
        reasons=tuple(quality.reasons),
        action=image.action,
        recommendation=image.recommendation,
        grade=image.grade,
        probabilities=tuple(image.probabilities) if image.probabilities is not None else None,
        referable=image.referable,
        referable_probability=image.referable_probability,
    )


def _without_algorithm(items: list[Dataset]) -> list[Dataset]:
    """sr._findings' items less the algorithm, which the enclosing Findings states once."""
    wanted = {(code.scheme, code.value) for code in _ALGORITHM}
    return [
        item
        for item in items
        if (
            str(item.ConceptNameCodeSequence[0].CodingSchemeDesignator),
            str(item.ConceptNameCodeSequence[0].CodeValue),
        )
        not in wanted
    ]


def _eye(exam: StudyExam, eye: EyeExam, uids: tuple[str, ...], classes: dict[str, str]) -> Dataset:
    index = eye.deciding_index
    shown = 0 if index is None else index
    finding = replace(
        _photo_finding(exam, eye.images[shown]),
        gradable=eye.gradable,
        quality_score=eye.quality_score,
        reasons=tuple(eye.quality_reasons),
        action=eye.action,
        recommendation=eye.recommendation,
        laterality="R" if eye.eye == "right" else "L",
    )
    uid = uids[shown]
    items = _without_algorithm(_findings(finding, classes[uid], uid))
    if index is not None:
        threatening = codes.YES if eye.vision_threatening else codes.NO
        items.append(_code_item("CONTAINS", codes.VISION_THREATENING, threatening))
        items.append(_image("CONTAINS", codes.DECIDING_IMAGE, classes[uid], uid))
    for image, image_uid in zip(eye.images, uids, strict=True):
        photo = _without_algorithm(
            _findings(_photo_finding(exam, image), classes[image_uid], image_uid)
        )
        source = _image("CONTAINS", codes.SOURCE_IMAGE, classes[image_uid], image_uid)
        items.append(_container("CONTAINS", codes.PHOTOGRAPH, [source, *photo]))
    return _container("CONTAINS", codes.EYE, items)


def _yes_no(concept: codes.Code, value: bool) -> Dataset:
    return _code_item("CONTAINS", concept, codes.YES if value else codes.NO)


def _patient(referral: PatientReferral) -> Dataset:
    items = [
        _code_item("CONTAINS", codes.NEXT_STEP, codes.ACTIONS[referral.action]),
        _text("CONTAINS", codes.RECOMMENDATION, referral.summary),
        _yes_no(codes.REFERABLE_DR, referral.referable),
        _yes_no(codes.VISION_THREATENING, referral.vision_threatening),
        _yes_no(codes.INSUFFICIENT_QUALITY, referral.insufficient_quality),
    ]
    for missing in referral.missing_eyes:
        side = codes.RIGHT if missing == "right" else codes.LEFT
        items.append(_code_item("CONTAINS", codes.EYE_MISSING, side))
    return _container("CONTAINS", codes.PATIENT, items)
