"""``GET /v1/results/{sop_instance_uid}``: the JSON result of an instance received by STOW-RS.

An instance of a study (every instance since store version 2) has no SR of its own: ``sr`` and
``delivery`` are its study's (``GET /v1/studies/{uid}`` has the whole exam).

Per object: a result is readable by the API client that sent the instance and by clients with
the ``results:read`` scope (admins). Anyone else gets the same 404 as for an unknown UID, so
the answer does not reveal that an instance exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Request
from pydantic import BaseModel, Field

from gateway.api.responses import error_responses
from gateway.api.routes.dicomweb import IntakeDep
from gateway.auth import ApiClient, ApiKeyStore, key_from_headers
from gateway.clinical import DISCLAIMER
from gateway.errors import ApiError
from gateway.results import EyeResult, ModelInfo
from gateway.store.results import ResultRow
from gateway.store.studies import StudyRow

router = APIRouter(tags=["pacs"])

UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"


class SrReference(BaseModel):
    """The DICOM SR that says the result (the study's SR)."""

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


READ_ALL_SCOPE = "results:read"
_ASKING_SCOPES = (READ_ALL_SCOPE, "pacs", "grade")


def require_results_scope(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ApiClient | None:
    """A key with ``results:read``, ``pacs`` or ``grade`` may ask; the row decides what it sees."""
    store: ApiKeyStore | None = request.app.state.api_keys
    if store is None:  # DRG_AUTH=disabled (demo only)
        return None
    key = key_from_headers(authorization, x_api_key)
    for scope in _ASKING_SCOPES:
        try:
            client = store.authenticate(key, scope)
        except ApiError as error:
            if error.code == "forbidden":
                continue
            raise
        request.state.client = client.name
        return client
    raise ApiError(
        "forbidden", "this key may not read results (scopes: " + ", ".join(_ASKING_SCOPES) + ")"
    )


def may_read(client: ApiClient | None, row: ResultRow | StudyRow) -> bool:
    """The sender of the instance (of a study: of its first instance), or an admin (``None``:
    DRG_AUTH=disabled, the demo)."""
    if client is None or READ_ALL_SCOPE in client.scopes:
        return True
    return row.sender is not None and row.sender == client.name


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@router.get(
    "/v1/results/{sop_instance_uid}",
    response_model=PacsResult,
    summary="The grading of an instance sent by the PACS, and the delivery state of its SR",
    responses=error_responses(
        "not_found", "unauthorized", "forbidden", "invalid_parameter", "store_unavailable"
    ),
)
async def get_result(
    sop_instance_uid: Annotated[str, Path(max_length=64, pattern=UID_PATTERN)],
    client: Annotated[ApiClient | None, Depends(require_results_scope)],
    intake: IntakeDep,
) -> PacsResult:
    """404 ``not_found`` until the instance has been received and graded, and for a result
    this client may not read. Any replica answers: the store is shared."""
    row = await intake.lookup(sop_instance_uid)
    if row is None or not may_read(client, row):
        raise ApiError("not_found", "no result for this SOP Instance UID")
    if row.study_uid is None:  # a per-instance SR of the release before studies
        return PacsResult(**row.result, delivery=delivery_state(row))
    study = await intake.lookup_study(row.study_uid)
    if study is None or study.sr_sop_uid is None:
        raise ApiError("not_found", "no result for this SOP Instance UID")
    sr = {k: v for k, v in study.exam["sr"].items() if k != "replaces"}
    return PacsResult(**row.result, sr=SrReference(**sr), delivery=delivery_state(study))


def delivery_state(row: ResultRow | StudyRow) -> DeliveryState:
    """Where a row's SR is on its way to the PACS."""
    pending = row.status == "pending"
    return DeliveryState(
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=_time(row.next_attempt_at) if pending else None,
        delivered_at=_time(row.delivered_at),
    )
