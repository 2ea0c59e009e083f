"""``POST /v1/exams``: one screening visit, 1 to ``DRG_MAX_IMAGES_PER_EYE`` photographs per eye,
one result per eye and one patient-level decision."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gateway.api import fhir
from gateway.api.deps import (
    DeadlineDep,
    GradeClientDep,
    MetricsDep,
    SelectorDep,
    ServiceDep,
    SettingsDep,
)
from gateway.api.responses import IMAGE_ERRORS, SERVICE_ERRORS, error_responses
from gateway.api.routes._timeouts import within
from gateway.api.schemas import ExamResponse
from gateway.api.uploads import content_type, read_file_lists
from gateway.errors import ApiError
from gateway.exam import Eye, split_by_eye
from gateway.fhir import exam_bundle
from gateway.grading import ImageInput
from gateway.results import exam_eye_result, model_info, model_warning, patient_result, timings

router = APIRouter(tags=["grading"])

_FIELDS: tuple[Eye, ...] = ("left", "right")
_PHOTOS = {
    "type": "array",
    "items": {"type": "string", "format": "binary"},
    "description": "photographs of this eye (the field repeats; 1 to DRG_MAX_IMAGES_PER_EYE)",
}
EXAM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"left": _PHOTOS, "right": _PHOTOS},
                },
                "encoding": {"left": {"style": "form"}, "right": {"style": "form"}},
            }
        },
    }
}


@router.post(
    "/v1/exams",
    response_model=ExamResponse,
    summary="Grade a screening visit: photographs of each eye, one decision per patient",
    responses={
        **fhir.FHIR_RESPONSES,
        **error_responses(*IMAGE_ERRORS, *SERVICE_ERRORS, "too_many_images", "laterality_mismatch"),
    },
    openapi_extra=EXAM_BODY,
)
async def exam(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    client: GradeClientDep,
    selector: SelectorDep,
    deadline: DeadlineDep,
    explain: Annotated[bool, Query(description="Add Grad-CAM overlays")] = False,
) -> ExamResponse | Response:
    """Each eye takes the result of its worst gradable photograph; the worse eye decides for
    the patient; an eye with no gradable photograph (and no referable other eye) means retake
    or an in-person examination; an eye not sent is named in ``patient.missing_eyes``."""
    started = time.perf_counter()
    if content_type(request) != "multipart/form-data":
        raise ApiError(
            "unsupported_media_type", "send multipart/form-data with file fields 'left' and 'right'"
        )
    async with within(deadline):
        files = await read_file_lists(request, _FIELDS, settings.max_images_per_eye)
        inputs = [
            ImageInput(data, f"{eye}[{index}]", "L" if eye == "left" else "R")
            for eye in _FIELDS
            for index, data in enumerate(files[eye])
        ]
        outcome = await service.grade(inputs, selector, explain, deadline)
    eyes = split_by_eye(outcome.eyes, {eye: len(files[eye]) for eye in _FIELDS})
    left, right = eyes["left"], eyes["right"]
    patient = patient_result(left, right)
    metrics.observe_exam(
        {
            "referable": patient.referable,
            "vision_threatening": patient.vision_threatening,
            "insufficient_quality": patient.insufficient_quality,
        },
        len(inputs),
    )
    result = ExamResponse(
        request_id=request.state.request_id,
        model=model_info(outcome),
        left=exam_eye_result(left) if left else None,
        right=exam_eye_result(right) if right else None,
        patient=patient,
        timings=timings(outcome, (time.perf_counter() - started) * 1000),
        model_warning=model_warning(outcome),
    )
    if fhir.wants_fhir(request):
        return fhir.fhir_response(exam_bundle(result, issued=datetime.now(UTC)))
    return result
