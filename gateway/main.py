"""``create_app(settings)``: the FastAPI application with its lifespan, middleware and handlers."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.routes import (
    dicomweb,
    docs,
    exams,
    grade,
    health,
    metrics,
    results,
    scale,
    studies,
    ui,
)
from gateway.auth import ApiKeyStore
from gateway.backends.base import ModelBackend
from gateway.backends.retry import RetryPolicy
from gateway.errors import ApiError
from gateway.grading import GradingService
from gateway.limits import BodySizeLimitMiddleware
from gateway.logs import peer_fields, request_id_var
from gateway.metrics import GatewayMetrics
from gateway.pacs.intake import PacsIntake
from gateway.settings import Settings
from gateway.store.migrate import SchemaOutOfDate
from gateway.store.results import StoreUnavailable

logger = logging.getLogger("gateway")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MULTIPART_OVERHEAD = 64 * 1024
"""Room for multipart headers/boundaries and a second eye on top of the image limit."""


def body_limit(max_upload_bytes: int) -> int:
    """The request body limit: two eyes of ``max_upload_bytes`` plus multipart overhead."""
    return 2 * max_upload_bytes + MULTIPART_OVERHEAD


def build_backend(settings: Settings, metrics: GatewayMetrics) -> ModelBackend:
    """The configured backend; the local one (and TensorFlow) is imported only when chosen."""
    if settings.backend == "local":
        from gateway.backends.local import LocalBackend

        return LocalBackend(
            settings.model_dir, settings.model_name, settings.model_version, metrics
        )
    from gateway.backends.tfserving import TFServingBackend

    return TFServingBackend(
        settings.tfserving_target, settings.model_name, metrics, RetryPolicy.from_settings(settings)
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the backend (the one gRPC channel, or the in-process model) and close it."""
    settings: Settings = app.state.settings
    backend = build_backend(settings, app.state.metrics)
    await backend.start()
    app.state.service = GradingService(backend, settings, app.state.metrics)
    if settings.pacs_enabled:
        try:
            app.state.pacs = await PacsIntake.open(settings, app.state.service, app.state.metrics)
        except (SchemaOutOfDate, StoreUnavailable) as error:
            # Refuse to start: a gateway must not accept STOW-RS it cannot store.
            message = f"results store {settings.database.describe()}: {error}"
            logger.error(message, extra={"event": "store_refused"})
            await backend.close()
            raise RuntimeError(message) from None
    if settings.auth == "disabled":
        logger.warning(
            "authentication is DISABLED (demo mode): anyone who can reach %s:%s can grade",
            settings.host,
            settings.port,
            extra={"event": "auth_disabled"},
        )
    logger.info(
        "gateway started (backend=%s, model=%s)",
        settings.backend,
        settings.model_name,
        extra={"event": "started"},
    )
    try:
        yield
    finally:
        if settings.pacs_enabled:
            await app.state.pacs.close()
        await backend.close()
        logger.info("gateway stopped", extra={"event": "stopped"})


class RequestContextMiddleware:
    """Request id, in-flight gauge, per-route metrics and one JSON log line per request."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        # Echo a client's id only in a safe form (it lands in logs and response headers).
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "other"
            method = scope["method"]
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self.metrics.request_duration.labels(route=route, method=method).observe(elapsed)
            state = scope.get("state", {})
            error_code = state.get("error_code")
            if error_code:
                self.metrics.errors.labels(code=error_code).inc()
            logger.info(
                "request",
                extra={
                    "route": route,
                    "method": method,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "error_code": error_code,
                    "client": state.get("client"),
                    # Who was refused (no patient data): the TCP peer and, behind the ALB,
                    # the address the ALB appended to X-Forwarded-For.
                    **(peer_fields(scope, headers) if status in (401, 403) else {}),
                },
            )
            request_id_var.reset(token)


def _error_response(
    request: Request, error: ApiError, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    request.state.error_code = error.code
    sent = dict(headers or {})
    if error.retry_after_s:
        sent["Retry-After"] = str(error.retry_after_s)
    return JSONResponse(error.body(), status_code=error.status, headers=sent or None)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": {"code", "message"}}`` with the table's status."""

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg')}"
            for e in error.errors()
        )
        return _error_response(request, ApiError("invalid_parameter", details[:500]))

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, error: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        if code is None:
            code = "malformed_request" if error.status_code < 500 else "internal_error"
        # Keep Starlette's headers: a 405 must name the allowed methods (Allow, RFC 9110).
        return _error_response(request, ApiError(code, str(error.detail)), error.headers)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=error, extra={"error_code": "internal_error"})
        # Starlette re-raises after this response and uvicorn then drops the connection: say so,
        # or a keep-alive client sends its next request into the closing socket.
        error_response = ApiError("internal_error", "unexpected gateway error")
        return _error_response(request, error_response, {"Connection": "close"})


def create_app(settings: Settings) -> FastAPI:
    """The gateway application for ``settings``."""
    app = FastAPI(
        title="DR grading gateway",
        version="1.0.0",
        summary="Diabetic retinopathy grading of fundus photographs (decision support).",
        description=(
            "Grades fundus photographs (JPEG, PNG, TIFF, DICOM) on the international DR scale "
            "0-4 with a model served by TensorFlow Serving. Every error is "
            '`{"error": {"code": "...", "message": "..."}}` with a stable code. '
            "Results are decision support, not a diagnosis."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = GatewayMetrics()
    app.state.api_keys = (
        ApiKeyStore.load(settings.api_keys_file)
        if settings.auth == "enabled" and settings.api_keys_file is not None
        else None
    )
    for router in (
        health.router,
        grade.router,
        exams.router,
        metrics.router,
        dicomweb.router,
        results.router,
        studies.router,
        scale.router,
        ui.router,
        *((docs.router,) if settings.docs_served else ()),
    ):
        app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        limit=body_limit(settings.max_upload_bytes),
        read_timeout_s=min(settings.body_read_timeout_s, settings.request_timeout_s),
    )
    if settings.metrics_port is not None:
        app.add_middleware(metrics.MetricsPortMiddleware, metrics_port=settings.metrics_port)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
