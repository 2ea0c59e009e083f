"""``GET /docs`` (Swagger UI), only where ``Settings.docs_served``: development by default.

No swagger-ui files ship with the installed packages, so the page needs a CDN. In production it
is off (the OpenAPI JSON at ``/openapi.json`` stays); where it is on, the bundle is pinned to one
exact version and a Content-Security-Policy allows scripts from that CDN and this origin only.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

SWAGGER_UI_VERSION = "5.17.14"
"""An exact swagger-ui-dist release, never a floating tag."""
_CDN = "https://cdn.jsdelivr.net"
_DIST = f"{_CDN}/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}"
DOCS_CSP = (
    "default-src 'none'; "
    f"script-src {_CDN} 'unsafe-inline'; "  # the page's inline SwaggerUIBundle(...) call
    f"style-src {_CDN}; img-src 'self' data: {_CDN}; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> HTMLResponse:
    """Swagger UI over ``/openapi.json``, pinned version, with a CSP."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="DR grading gateway - API",
        swagger_js_url=f"{_DIST}/swagger-ui-bundle.js",
        swagger_css_url=f"{_DIST}/swagger-ui.css",
        swagger_favicon_url="data:,",
    )
    page.headers["Content-Security-Policy"] = DOCS_CSP
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page
