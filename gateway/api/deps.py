"""Typed dependencies for the routes."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from gateway.auth import ApiClient, ApiKeyStore, key_from_headers
from gateway.backends.base import ModelSelector
from gateway.errors import ApiError
from gateway.grading import GradingService
from gateway.metrics import GatewayMetrics
from gateway.settings import MAX_MODEL_VERSION, Settings


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> GradingService:
    """The grading service created in the lifespan."""
    service: GradingService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise ApiError("not_ready", "the gateway is starting")
    return service


def get_metrics(request: Request) -> GatewayMetrics:
    """The app's metrics."""
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[GradingService, Depends(get_service)]
MetricsDep = Annotated[GatewayMetrics, Depends(get_metrics)]


def _authenticate(
    request: Request,
    scope: str,
    authorization: str | None,
    x_api_key: str | None,
) -> ApiClient | None:
    store: ApiKeyStore | None = request.app.state.api_keys
    if store is None:  # DRG_AUTH=disabled (demo only; warned at startup)
        return None
    client = store.authenticate(key_from_headers(authorization, x_api_key), scope)
    request.state.client = client.name
    return client


def require_grade_scope(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ApiClient | None:
    """API key with the ``grade`` scope."""
    return _authenticate(request, "grade", authorization, x_api_key)


GradeClientDep = Annotated[ApiClient | None, Depends(require_grade_scope)]


def require_pacs_scope(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ApiClient | None:
    """API key with the ``pacs`` scope (DICOMweb intake)."""
    return _authenticate(request, "pacs", authorization, x_api_key)


PacsClientDep = Annotated[ApiClient | None, Depends(require_pacs_scope)]


def model_selector(
    settings: SettingsDep,
    version: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_MODEL_VERSION,
            description="Model version to use (default: configured/latest)",
        ),
    ] = None,
    label: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="Version label, e.g. stable or canary"),
    ] = None,
) -> ModelSelector:
    """The per-request version/label override, when the deployment allows it."""
    if version is None and label is None:
        return ModelSelector(settings.model_version, settings.model_label)
    if not settings.allow_version_override:
        raise ApiError(
            "invalid_parameter", "this gateway does not allow choosing the model version"
        )
    if version is not None and label is not None:
        raise ApiError("invalid_parameter", "give either version or label, not both")
    return ModelSelector(version, label)


SelectorDep = Annotated[ModelSelector, Depends(model_selector)]


def request_deadline(settings: SettingsDep) -> float:
    """Monotonic time by which the request must be answered."""
    return time.monotonic() + settings.request_timeout_s


DeadlineDep = Annotated[float, Depends(request_deadline)]
