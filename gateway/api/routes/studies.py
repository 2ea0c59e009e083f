"""``GET /v1/studies/{study_instance_uid}``: a PACS study's exam (every instance received by
STOW-RS, one result per eye and one per patient), its SR and the SR's delivery state.

Readable by the API client that sent the study's first instance and by ``results:read`` keys;
anyone else gets the 404 of an unknown study. ``Accept: application/fhir+json`` answers the
exam as a FHIR R4 Bundle whose resource ids derive from the Study Instance UID (the same study
always gives the same ids; an instance added later updates the same resources).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from gateway.api import fhir
from gateway.api.responses import error_responses
from gateway.api.routes.dicomweb import IntakeDep
from gateway.api.routes.results import (
    UID_PATTERN,
    DeliveryState,
    delivery_state,
    may_read,
    require_results_scope,
)
from gateway.auth import ApiClient
from gateway.clinical import DISCLAIMER
from gateway.errors import ApiError
from gateway.fhir import exam_bundle
from gateway.results import ExamEyeResult, ModelInfo, PatientResult

router = APIRouter(tags=["pacs"])


class StudyInstance(BaseModel):
    """One received instance and where it sits in the exam."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    eye: Literal["left", "right"] = Field(description="from its DICOM ImageLaterality")
    image_index: int = Field(description="index in that eye's images")
    model: ModelInfo = Field(description="the model version that graded this instance")


class StudySr(BaseModel):
    """The study's current SR (one Comprehensive SR for the whole study)."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    replaces: str | None = Field(
        None, description="SOP Instance UID of the study SR this one supersedes"
    )


class StudyResult(BaseModel):
    """A PACS study graded as one screening exam (no patient attributes)."""

    study_instance_uid: str
    model: ModelInfo
    left: ExamEyeResult | None
    right: ExamEyeResult | None
    patient: PatientResult
    instances: list[StudyInstance] = Field(description="in the order received")
    sr: StudySr
    delivery: DeliveryState
    updated_at: datetime = Field(description="when the latest instance joined the exam")
    disclaimer: str = DISCLAIMER
    model_warning: str | None = None


@router.get(
    "/v1/studies/{study_instance_uid}",
    response_model=StudyResult,
    summary="A PACS study's exam result, its SR and the SR's delivery state",
    responses={
        **fhir.FHIR_RESPONSES,
        **error_responses(
            "not_found", "unauthorized", "forbidden", "invalid_parameter", "store_unavailable"
        ),
    },
)
async def get_study(
    request: Request,
    study_instance_uid: Annotated[str, Path(max_length=64, pattern=UID_PATTERN)],
    client: Annotated[ApiClient | None, Depends(require_results_scope)],
    intake: IntakeDep,
) -> StudyResult | Response:
    """404 ``not_found`` until an instance of the study has been graded, and for a study this
    client may not read. Any replica answers: the store is shared."""
    row = await intake.lookup_study(study_instance_uid)
    if row is None or not may_read(client, row):
        raise ApiError("not_found", "no result for this Study Instance UID")
    if fhir.wants_fhir(request):
        issued = datetime.fromtimestamp(row.updated_at, UTC)
        return fhir.fhir_response(exam_bundle(row.exam, issued=issued, key=study_instance_uid))
    return StudyResult(**row.exam, delivery=delivery_state(row))
