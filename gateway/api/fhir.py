"""Content negotiation for the EHR: ``Accept: application/fhir+json`` answers the FHIR R4 Bundle
of ``gateway/fhir`` instead of the JSON result; without it (or with ``application/json``
preferred) the answer stays JSON."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from gateway.fhir import FHIR_MEDIA_TYPE, FHIR_VERSION

_FHIR_TYPES = (FHIR_MEDIA_TYPE, "application/json+fhir")  # the second: DSTU2's spelling

FHIR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            f"JSON result, or with `Accept: {FHIR_MEDIA_TYPE}` a FHIR R4 ({FHIR_VERSION}) Bundle "
            "(type collection: DiagnosticReport, Observations, Device, Provenance; "
            "docs/architecture.md, FHIR)"
        ),
        "content": {
            FHIR_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["resourceType", "type", "entry"],
                    "properties": {
                        "resourceType": {"type": "string", "enum": ["Bundle"]},
                        "type": {"type": "string", "enum": ["collection"]},
                        "entry": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}
"""OpenAPI ``responses`` entry: the alternative media type of a 200 answer."""


def _qualities(accept: str) -> dict[str, float]:
    """Media range -> q of an Accept header (the highest when one is listed twice)."""
    found: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        found[media.lower()] = max(q, found.get(media.lower(), 0.0))
    return found


def wants_fhir(request: Request) -> bool:
    """The client asks for FHIR at least as much as for plain JSON."""
    qualities = _qualities(request.headers.get("accept", ""))
    fhir = max((qualities.get(media, 0.0) for media in _FHIR_TYPES), default=0.0)
    return fhir > 0 and fhir >= qualities.get("application/json", 0.0)


def fhir_response(bundle: dict[str, Any]) -> Response:
    """The Bundle as ``application/fhir+json`` (with its FHIR version, as R4 asks)."""
    body = json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, media_type=f"{FHIR_MEDIA_TYPE}; fhirVersion=4.0")
