"""``POST /v1/exams``: both eyes of one patient and the patient-level referral."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request

from gateway.api.deps import DeadlineDep, GradeClientDep, SelectorDep, ServiceDep
from gateway.api.responses import IMAGE_ERRORS, SERVICE_ERRORS, error_responses
from gateway.api.routes._timeouts import within
from gateway.api.schemas import ExamResponse
from gateway.api.uploads import content_type, read_files
from gateway.errors import ApiError
from gateway.grading import ImageInput
from gateway.results import eye_result, model_info, model_warning, patient_result, timings

router = APIRouter(tags=["grading"])

EXAM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["left", "right"],
                    "properties": {
                        "left": {"type": "string", "format": "binary"},
                        "right": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/v1/exams",
    response_model=ExamResponse,
    summary="Grade both eyes and decide the patient-level referral",
    responses=error_responses(*IMAGE_ERRORS, *SERVICE_ERRORS),
    openapi_extra=EXAM_BODY,
)
async def exam(
    request: Request,
    service: ServiceDep,
    client: GradeClientDep,
    selector: SelectorDep,
    deadline: DeadlineDep,
    explain: Annotated[bool, Query(description="Add Grad-CAM overlays")] = False,
) -> ExamResponse:
    """The worse eye decides; an ungradable eye (and no referable other eye) means retake or
    refer for an in-person examination."""
    started = time.perf_counter()
    if content_type(request) != "multipart/form-data":
        raise ApiError(
            "unsupported_media_type", "send multipart/form-data with file fields 'left' and 'right'"
        )
    async with within(deadline):
        files = await read_files(request, ("left", "right"))
        outcome = await service.grade(
            [ImageInput(files["left"], "left", "L"), ImageInput(files["right"], "right", "R")],
            selector,
            explain,
            deadline,
        )
    left, right = outcome.eyes
    return ExamResponse(
        request_id=request.state.request_id,
        model=model_info(outcome),
        left=eye_result(left),
        right=eye_result(right),
        patient=patient_result(left, right),
        timings=timings(outcome, (time.perf_counter() - started) * 1000),
        model_warning=model_warning(outcome),
    )
