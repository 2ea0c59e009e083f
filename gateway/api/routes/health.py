"""``/livez`` (process alive) and ``/readyz`` (the model version is served and fits).

The same handlers also answer the Open Inference Protocol v2 paths ``/v2/health/live`` and
``/v2/health/ready`` (KServe-style probes and tools): one implementation, two paths each.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.api.deps import MetricsDep, ServiceDep, SettingsDep
from gateway.api.responses import error_responses
from gateway.api.schemas import LiveResponse, ReadyResponse
from gateway.errors import ApiError
from gateway.results import ModelInfo

router = APIRouter(tags=["operations"])


_LIVE = "Liveness: the process answers"
_READY = "Readiness: the model version is AVAILABLE and its signature fits"


@router.get("/v2/health/live", response_model=LiveResponse, summary=_LIVE)
@router.get("/livez", response_model=LiveResponse, summary=_LIVE)
async def livez() -> LiveResponse:
    """Always 200 while the event loop runs; never checks dependencies."""
    return LiveResponse()


@router.get(
    "/v2/health/ready",
    response_model=ReadyResponse,
    summary=_READY,
    responses=error_responses("not_ready"),
)
@router.get(
    "/readyz", response_model=ReadyResponse, summary=_READY, responses=error_responses("not_ready")
)
async def readyz(
    request: Request, service: ServiceDep, settings: SettingsDep, metrics: MetricsDep
) -> ReadyResponse:
    """503 ``not_ready`` with the reason when the model server is unreachable, the version is
    not AVAILABLE, its signature does not match the card's PreprocessConfig, or (PACS intake
    on) the results store cannot be reached."""
    try:
        served = await service.readiness(timeout_s=min(settings.backend_timeout_s, 3.0))
        if settings.pacs_enabled:
            await request.app.state.pacs.check_store()
    except ApiError as error:
        metrics.ready.set(0)
        raise ApiError("not_ready", f"{error.code}: {error.message}") from None
    metrics.ready.set(1)
    return ReadyResponse(
        backend=settings.backend,
        model=ModelInfo(name=served.name, version=served.version),
        input_size=served.card.preprocess_config.size,
    )
