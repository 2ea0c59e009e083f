"""``GET /``: the clinician page (static files in ``gateway/ui``; no CDN, no build step).

Only the files named in ``UI_FILES`` are served (no directory lookups, so no path traversal),
each with its content type, ``nosniff`` and a Content-Security-Policy that allows this origin
only: scripts and styles from ``/ui/``, API calls to the same origin, and ``data:`` images for
the Grad-CAM PNG the API returns inline.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Response

from gateway.errors import ApiError

router = APIRouter(tags=["clinician page"], include_in_schema=False)

UI_DIR = Path(__file__).resolve().parents[2] / "ui"
UI_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "messages.js": "text/javascript; charset=utf-8",
    "shell.js": "text/javascript; charset=utf-8",
    "preview.js": "text/javascript; charset=utf-8",
    "render.js": "text/javascript; charset=utf-8",
    "photos.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""Served file name -> Content-Type."""

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Revalidate every time: a new gateway version must not run an old script against a new API.
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=len(UI_FILES))
def _read(name: str) -> bytes:
    return (UI_DIR / name).read_bytes()


def ui_response(name: str) -> Response:
    """One of ``UI_FILES`` with its content type and the security headers."""
    if name not in UI_FILES:
        raise ApiError("not_found", f"no page resource {name!r}")
    return Response(_read(name), media_type=UI_FILES[name], headers=SECURITY_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"], response_class=Response, summary="Clinician page")
async def index() -> Response:
    """The page: pick or drop each eye's photograph and read the grading."""
    return ui_response("index.html")


@router.api_route(
    "/ui/{name}", methods=["GET", "HEAD"], response_class=Response, summary="Clinician page assets"
)
async def asset(name: str) -> Response:
    """The page's scripts and style sheet."""
    if name == "index.html":
        raise ApiError("not_found", "the page is served at /")
    return ui_response(name)
