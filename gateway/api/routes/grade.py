"""``POST /v1/grade``: one photograph."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from gateway.api.deps import DeadlineDep, GradeClientDep, SelectorDep, ServiceDep
from gateway.api.responses import IMAGE_ERRORS, SERVICE_ERRORS, error_responses
from gateway.api.routes._timeouts import within
from gateway.api.schemas import GradeResponse
from gateway.api.uploads import read_single_image
from gateway.grading import ImageInput
from gateway.results import eye_result, model_info, model_warning, timings

router = APIRouter(tags=["grading"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
GRADE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The photograph: multipart field `image`, or the raw body. The format "
        "(JPEG, PNG, TIFF, DICOM) is detected from the bytes; Content-Type is a hint.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            },
            "image/jpeg": _BINARY,
            "image/png": _BINARY,
            "image/tiff": _BINARY,
            "application/dicom": _BINARY,
        },
    }
}


@router.post(
    "/v1/grade",
    response_model=GradeResponse,
    response_model_exclude_none=False,
    summary="Grade diabetic retinopathy in one fundus photograph",
    responses=error_responses(*IMAGE_ERRORS, *SERVICE_ERRORS),
    openapi_extra=GRADE_BODY,
)
async def grade(
    request: Request,
    service: ServiceDep,
    client: GradeClientDep,
    selector: SelectorDep,
    deadline: DeadlineDep,
    explain: Annotated[bool, Query(description="Add a Grad-CAM heatmap overlay (PNG)")] = False,
    laterality: Annotated[
        Literal["L", "R"] | None, Query(description="Eye, when the file does not say (DICOM does)")
    ] = None,
) -> GradeResponse:
    """Quality gate, then grade 0-4, referral decision and recommendation.

    An ungradable image is answered with 200, ``quality.gradable = false``, no grade, and
    advice to retake or refer for an in-person examination.
    """
    started = time.perf_counter()
    async with within(deadline):
        data = await read_single_image(request)
        outcome = await service.grade(
            [ImageInput(data, "image", laterality)], selector, explain, deadline
        )
    eye = eye_result(outcome.eyes[0])
    return GradeResponse(
        **eye.model_dump(),
        request_id=request.state.request_id,
        model=model_info(outcome),
        timings=timings(outcome, (time.perf_counter() - started) * 1000),
        model_warning=model_warning(outcome),
    )
