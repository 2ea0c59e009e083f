"""``GET /metrics`` in the Prometheus text format, and where it is served.

With ``DRG_METRICS_PORT`` set, ``/metrics`` answers on that port only and the API port answers
404 for it (whatever its spelling: uvicorn decodes ``/%6detrics`` to ``/metrics`` before the app
sees it, while the ALB rule only matches the literal path). The metrics port serves nothing
else; the Service and the ALB do not expose it (k8s/base/gateway).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.deps import MetricsDep
from gateway.errors import ApiError

router = APIRouter(tags=["operations"])
METRICS_PATH = "/metrics"


@router.get(METRICS_PATH, summary="Prometheus metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    """All gateway metrics (bounded labels; no patient data)."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsPortMiddleware:
    """``/metrics`` on ``metrics_port`` only; nothing else there (404 ``not_found``)."""

    def __init__(self, app: ASGIApp, metrics_port: int) -> None:
        self.app = app
        self.metrics_port = metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        on_metrics_port = server is not None and server[1] == self.metrics_port
        # Compare the decoded path with trailing slashes removed: the router would redirect
        # "/metrics/" to "/metrics" otherwise.
        wants_metrics = scope["path"].rstrip("/") == METRICS_PATH
        if on_metrics_port == wants_metrics:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["error_code"] = "not_found"
        body = json.dumps(ApiError("not_found", "not found").body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
