"""``GET /v1/results/{sop_instance_uid}``: the JSON result of an instance received by STOW-RS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Request
from pydantic import BaseModel, Field

from gateway.api.deps import require_grade_scope, require_pacs_scope
from gateway.api.responses import error_responses
from gateway.api.routes.dicomweb import IntakeDep
from gateway.api.schemas import EyeResult, ModelInfo
from gateway.auth import ApiClient
from gateway.clinical import DISCLAIMER
from gateway.errors import ApiError

router = APIRouter(tags=["pacs"])

UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"


class SrReference(BaseModel):
    """The DICOM SR built for the instance."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str


class DeliveryState(BaseModel):
    """Where the SR is on its way to the PACS."""

    status: Literal["pending", "delivered"]
    attempts: int
    last_error: str | None = Field(None, examples=["transport_ConnectError"])
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


class PacsResult(BaseModel):
    """Grading of one instance received by STOW-RS (no patient attributes)."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    model: ModelInfo
    result: EyeResult
    sr: SrReference
    delivery: DeliveryState
    graded_at: datetime
    disclaimer: str = DISCLAIMER


def require_results_scope(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ApiClient | None:
    """Clinician clients (``grade``) and the PACS integration (``pacs``) may read results."""
    try:
        return require_grade_scope(request, authorization, x_api_key)
    except ApiError as error:
        if error.code != "forbidden":
            raise
    return require_pacs_scope(request, authorization, x_api_key)


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@router.get(
    "/v1/results/{sop_instance_uid}",
    response_model=PacsResult,
    summary="The grading of an instance sent by the PACS, and the delivery state of its SR",
    responses=error_responses("not_found", "unauthorized", "forbidden", "invalid_parameter"),
)
async def get_result(
    sop_instance_uid: Annotated[str, Path(max_length=64, pattern=UID_PATTERN)],
    client: Annotated[ApiClient | None, Depends(require_results_scope)],
    intake: IntakeDep,
) -> PacsResult:
    """404 ``not_found`` until the instance has been received and graded."""
    row = await intake.lookup(sop_instance_uid)
    if row is None:
        raise ApiError("not_found", "no result for this SOP Instance UID")
    pending = row.status == "pending"
    return PacsResult(
        **row.result,
        delivery=DeliveryState(
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            next_attempt_at=_time(row.next_attempt_at) if pending else None,
            delivered_at=_time(row.delivered_at),
        ),
    )
