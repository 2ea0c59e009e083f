"""``POST /dicomweb/studies``: STOW-RS intake from a PACS (PS3.18 section 10.5).

Each instance is graded when it is a photograph (Ophthalmic Photography 8/16 bit, Secondary
Capture, VL Photographic); its DICOM SR is queued for delivery back to the PACS. The answer is
a STOW-RS response (``application/dicom+json``): instances listed in the Referenced SOP
Sequence were graded (or had been already), the others are in the Failed SOP Sequence with a
Failure Reason and the gateway's error code in a private attribute.

The work is bounded: at most ``DRG_PACS_MAX_PARTS`` instances per request (more: 413
``too_many_parts``: the request is well formed but larger than the gateway processes, PS3.18
8.5; 400 would tell the sender its syntax is wrong), the body is split and every instance
parsed in worker threads under the inference limiter (never on the event loop, which serves
``/livez``), and one deadline (``DRG_REQUEST_TIMEOUT_S``) covers the whole request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import PacsClientDep, SettingsDep
from gateway.api.responses import error_responses
from gateway.backends.base import ModelSelector
from gateway.errors import ApiError
from gateway.pacs import stow
from gateway.pacs.intake import PacsIntake

router = APIRouter(tags=["pacs"])


def get_intake(request: Request, settings: SettingsDep) -> PacsIntake:
    """The PACS intake opened in the lifespan; 404 when this gateway has it disabled."""
    if not settings.pacs_enabled:
        raise ApiError("not_found", "PACS intake is disabled on this gateway (DRG_PACS_ENABLED)")
    intake: PacsIntake | None = getattr(request.app.state, "pacs", None)
    if intake is None:
        raise ApiError("not_ready", "the gateway is starting")
    return intake


IntakeDep = Annotated[PacsIntake, Depends(get_intake)]

_BINARY = {"schema": {"type": "string", "format": "binary"}}
STOW_BODY = {
    "requestBody": {
        "required": True,
        "description": 'multipart/related; type="application/dicom" with one DICOM Part 10 '
        "instance per part, or one raw instance with any Content-Type.",
        "content": {
            'multipart/related; type="application/dicom"': _BINARY,
            "application/dicom": _BINARY,
        },
    }
}
STOW_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Every instance graded", "content": {stow.DICOM_JSON_MEDIA_TYPE: {}}},
    202: {"description": "Some instances failed", "content": {stow.DICOM_JSON_MEDIA_TYPE: {}}},
    409: {"description": "No instance accepted", "content": {stow.DICOM_JSON_MEDIA_TYPE: {}}},
    503: {
        "description": "No instance accepted for now (busy or model server down): retry later",
        "content": {stow.DICOM_JSON_MEDIA_TYPE: {}},
    },
    **error_responses(
        "empty_input",
        "malformed_request",
        "unsupported_media_type",
        "payload_too_large",
        "too_many_parts",
        "overloaded",
        "unauthorized",
        "forbidden",
        "not_found",
    ),
}


@router.post(
    "/dicomweb/studies",
    summary="STOW-RS: store fundus photographs, grade them, send DICOM SR results back",
    response_class=JSONResponse,
    responses=STOW_RESPONSES,
    openapi_extra=STOW_BODY,
)
async def store_instances(
    request: Request, client: PacsClientDep, intake: IntakeDep, settings: SettingsDep
) -> JSONResponse:
    """Grade every instance of the request; results go back to the PACS as DICOM SR."""
    body = await request.body()
    deadline = time.monotonic() + settings.request_timeout_s
    content_type = request.headers.get("content-type", "")
    async with intake.limiter.slot(len(body)):  # the parts are copies of the body
        instances = await asyncio.to_thread(
            stow.split_body, content_type, body, settings.pacs_max_parts
        )
    selector = ModelSelector(settings.model_version, settings.model_label)
    sender = client.name if client is not None else None
    results = await intake.store_all(instances, selector, sender, deadline)
    status = stow.response_status(results)
    headers = {"Retry-After": "30"} if status == 503 else None
    return JSONResponse(
        stow.response_dataset(results),
        status_code=status,
        media_type=stow.DICOM_JSON_MEDIA_TYPE,
        headers=headers,
    )
