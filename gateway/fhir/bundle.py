"""A screening exam as a FHIR R4 Bundle (type ``collection``), built with fhir.resources.

Entries: one DiagnosticReport (status ``preliminary``: AI output no clinician has verified), the
patient-level Observation, one Observation per eye and one per photograph, the Device (the
model's name and version) and a Provenance naming the Device as author. Every DiagnosticReport
and Observation carries the AI Transparency on FHIR security label ``AIAST``. No Patient: the
REST API knows no patient identity; the EHR sets ``subject`` when it files the report.
Resource ids are UUIDv5 (``exam_bundle``'s ``key``): the same exam gives the same ids.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.device import Device, DeviceDeviceName, DeviceVersion
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel, ConfigDict

from contract.grades import GRADE_NAMES
from gateway.clinical import DISCLAIMER
from gateway.fhir import systems as s
from gateway.pacs import codes
from gateway.pacs.codes import Code
from gateway.results import ExamEyeResult, EyeResult, ModelInfo, PatientResult

MANUFACTURER = "DR grading gateway"
_NAMESPACE = uuid.UUID("5f1d7c52-2b8e-4c0b-9a3e-0d6f2a7c41b3")


class ExamDocument(BaseModel):
    """What the Bundle needs of an exam: the fields of ``ExamResponse`` (gateway/api/schemas.py)
    or of the stored study document; anything else (timings, sr, ...) is ignored."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    model: ModelInfo
    left: ExamEyeResult | None
    right: ExamEyeResult | None
    patient: PatientResult
    disclaimer: str = DISCLAIMER
    model_warning: str | None = None


def exam_bundle(
    exam: BaseModel | Mapping[str, Any], *, issued: datetime, key: str | None = None
) -> dict[str, Any]:
    """The FHIR R4 Bundle (JSON) of ``exam``, an ``ExamResponse`` or its JSON document.

    ``issued`` (timezone-aware) is when the result was produced: DiagnosticReport.issued,
    Observation.issued, Provenance.recorded and Bundle.timestamp. ``key`` seeds the resource
    ids (default: request id and ``issued``, as a client may reuse an X-Request-ID; a study
    passes its Study Instance UID, so the same study always gives the same ids)."""
    if issued.tzinfo is None:
        raise ValueError("issued must be timezone-aware")
    raw = exam.model_dump() if isinstance(exam, BaseModel) else dict(exam)
    document = ExamDocument.model_validate(raw)
    seed = key if key is not None else f"{document.request_id}@{issued.isoformat()}"
    return _Builder(document, issued, seed).bundle()


def _coding(code: Code) -> Coding:
    return Coding(system=s.SYSTEMS[code.scheme], code=code.value, display=code.meaning)


def _concept(code: Code, text: str | None = None) -> CodeableConcept:
    return CodeableConcept(coding=[_coding(code)], text=text)


def _severity(grade: int) -> CodeableConcept:
    """Grade 1-4: SNOMED CT disorder; grade 0: the local code (no SNOMED CT disorder)."""
    return _concept(codes.SEVERITY[grade], GRADE_NAMES[grade])


def _ratio(value: float) -> Quantity:
    return Quantity(value=value, unit="1", system=s.UCUM, code="1")


def _ai_asserted() -> Meta:
    code, display = s.AI_ASSERTED
    return Meta(security=[Coding(system=s.V3_OBSERVATION_VALUE, code=code, display=display)])


_IMAGING = CodeableConcept(coding=[Coding(system=s.OBSERVATION_CATEGORY, code=s.IMAGING)])


def _not_graded() -> CodeableConcept:
    """data-absent-reason ``not-performed``: the quality gate stopped the grading."""
    absent = Coding(system=s.DATA_ABSENT_REASON, code=s.NOT_PERFORMED, display="Not Performed")
    return CodeableConcept(coding=[absent], text="ungradable: not graded")


def _component(code: Code, **value: Any) -> ObservationComponent:
    return ObservationComponent(code=_concept(code), **value)


def _quality_components(result: EyeResult | ExamEyeResult) -> list[ObservationComponent]:
    quality = result.quality
    parts = [
        _component(codes.GRADABLE, valueBoolean=quality.gradable),
        _component(codes.QUALITY_SCORE, valueQuantity=_ratio(quality.score)),
    ]
    for reason in quality.reasons:
        known = codes.QUALITY_REASONS.get(reason)
        value = _concept(known, reason) if known else CodeableConcept(text=reason)
        parts.append(_component(codes.UNGRADABLE_REASON, valueCodeableConcept=value))
    return parts


def _grade_components(result: EyeResult | ExamEyeResult) -> list[ObservationComponent]:
    parts = []
    if result.grade is not None:
        parts.append(_component(codes.ICDR_GRADE, valueInteger=result.grade))
    for index, probability in sorted((result.probabilities or {}).items()):
        code = codes.GRADE_PROBABILITIES[int(index)]
        parts.append(_component(code, valueQuantity=_ratio(probability)))
    if result.referable is not None:
        parts.append(_component(codes.REFERABLE_DR, valueBoolean=result.referable))
    if result.referable_probability is not None:
        referable = _ratio(result.referable_probability)
        parts.append(_component(codes.REFERABLE_PROBABILITY, valueQuantity=referable))
    if isinstance(result, ExamEyeResult) and result.vision_threatening is not None:
        parts.append(_component(s.VISION_THREATENING, valueBoolean=result.vision_threatening))
    parts.append(
        _component(codes.NEXT_STEP, valueCodeableConcept=_concept(codes.ACTIONS[result.action]))
    )
    return parts


class _Builder:
    """The resources of one exam, their ids and the references between them."""

    def __init__(self, exam: ExamDocument, issued: datetime, seed: str) -> None:
        self.exam = exam
        self.issued = issued
        self.seed = seed

    def _id(self, role: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self.seed}/{role}"))

    @staticmethod
    def _ref(resource: Resource) -> Reference:
        return Reference(reference=f"urn:uuid:{resource.id}")

    def bundle(self) -> dict[str, Any]:
        device = self._device()
        eyes = [self._eye(side, eye, device) for side, eye in self._eyes()]
        patient = self._patient(eyes, device)
        images = [image for _, images in eyes for image in images]
        report = self._report([patient, *(eye for eye, _ in eyes), *images])
        provenance = self._provenance([report, patient, *(eye for eye, _ in eyes), *images], device)
        entries = [report, patient, *(eye for eye, _ in eyes), *images, device, provenance]
        bundle = Bundle(
            id=self._id("bundle"),
            identifier=Identifier(system=s.URN_IETF, value=f"urn:uuid:{self._id('bundle')}"),
            type="collection",
            timestamp=self.issued,
            entry=[BundleEntry(fullUrl=f"urn:uuid:{r.id}", resource=r) for r in entries],
        )
        result: dict[str, Any] = json.loads(bundle.model_dump_json())
        return result

    def _eyes(self) -> list[tuple[str, ExamEyeResult]]:
        pairs = (("left", self.exam.left), ("right", self.exam.right))
        return [(side, eye) for side, eye in pairs if eye is not None]

    def _device(self) -> Device:
        model = self.exam.model
        return Device(
            id=self._id("device"),
            manufacturer=MANUFACTURER,
            deviceName=[DeviceDeviceName(name=model.name, type="model-name")],
            version=[
                DeviceVersion(type=CodeableConcept(text="model version"), value=str(model.version))
            ],
            type=CodeableConcept(
                text="AI software: diabetic retinopathy grading of fundus photographs"
            ),
            note=[Annotation(text=self.exam.model_warning)] if self.exam.model_warning else None,
        )

    def _grading(
        self, role: str, result: EyeResult | ExamEyeResult, device: Device, method: str, text: str
    ) -> Observation:
        site = s.EYE_SITES.get(result.laterality) if result.laterality else None
        graded = result.grade is not None
        return Observation(
            id=self._id(role),
            meta=_ai_asserted(),
            status="preliminary",
            category=[_IMAGING],
            code=_concept(codes.ICDR_GRADE, text),
            issued=self.issued,
            valueCodeableConcept=_severity(result.grade) if result.grade is not None else None,
            dataAbsentReason=None if graded else _not_graded(),
            bodySite=_concept(site) if site else None,
            method=CodeableConcept(text=method),
            device=self._ref(device),
            note=[Annotation(text=result.recommendation)],
            component=[*_quality_components(result), *_grade_components(result)],
        )

    def _eye(
        self, side: str, eye: ExamEyeResult, device: Device
    ) -> tuple[Observation, list[Observation]]:
        images = [
            self._grading(
                f"{side}/{index}",
                image,
                device,
                "AI grading of one colour fundus photograph",
                f"DR severity, {side} eye, photograph {index + 1} of {len(eye.images)}",
            )
            for index, image in enumerate(eye.images)
        ]
        observation = self._grading(
            side,
            eye,
            device,
            "the eye's worst gradable photograph decides (gateway/exam.py)",
            f"DR severity, {side} eye",
        )
        observation.derivedFrom = [self._ref(image) for image in images]
        return observation, images

    def _patient(
        self, eyes: list[tuple[Observation, list[Observation]]], device: Device
    ) -> Observation:
        patient = self.exam.patient
        parts = [
            _component(codes.REFERABLE_DR, valueBoolean=patient.referable),
            _component(s.VISION_THREATENING, valueBoolean=patient.vision_threatening),
            _component(s.INSUFFICIENT_QUALITY, valueBoolean=patient.insufficient_quality),
        ]
        if patient.worst_grade is not None:
            parts.append(
                _component(s.WORST_GRADE, valueCodeableConcept=_severity(patient.worst_grade))
            )
        for missing in patient.missing_eyes:
            site = s.EYE_SITES["L" if missing == "left" else "R"]
            parts.append(_component(s.EYE_NOT_EXAMINED, valueCodeableConcept=_concept(site)))
        notes = [patient.summary, patient.caveat, self.exam.disclaimer]
        return Observation(
            id=self._id("patient"),
            meta=_ai_asserted(),
            status="preliminary",
            category=[_IMAGING],
            code=_concept(s.PATIENT_RESULT, "DR screening result of the visit"),
            issued=self.issued,
            valueCodeableConcept=_concept(codes.ACTIONS[patient.action]),
            device=self._ref(device),
            hasMember=[self._ref(eye) for eye, _ in eyes] or None,
            note=[Annotation(text=text) for text in notes],
            component=parts,
        )

    def _report(self, results: list[Observation]) -> DiagnosticReport:
        patient = self.exam.patient
        return DiagnosticReport(
            id=self._id("report"),
            meta=_ai_asserted(),
            identifier=[Identifier(system=s.REQUEST_ID, value=self.exam.request_id)],
            status="preliminary",
            code=_concept(codes.REPORT),
            issued=self.issued,
            result=[self._ref(observation) for observation in results],
            conclusion=patient.summary,
            conclusionCode=[_severity(patient.worst_grade)]
            if patient.worst_grade is not None
            else None,
        )

    def _provenance(self, targets: list[Resource], device: Device) -> Provenance:
        author = Coding(system=s.PROVENANCE_PARTICIPANT, code=s.AUTHOR, display="Author")
        return Provenance(
            id=self._id("provenance"),
            target=[self._ref(target) for target in targets],
            recorded=self.issued,
            agent=[ProvenanceAgent(type=CodeableConcept(coding=[author]), who=self._ref(device))],
        )
