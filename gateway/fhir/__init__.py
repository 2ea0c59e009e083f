"""FHIR R4 for the EHR: a screening exam as a Bundle (``gateway/fhir/bundle.py``), its codes
and systems (``gateway/fhir/systems.py``). No HTTP here: gateway/api negotiates the media type."""

from __future__ import annotations

from gateway.fhir.bundle import exam_bundle
from gateway.fhir.systems import FHIR_VERSION

FHIR_MEDIA_TYPE = "application/fhir+json"

__all__ = ["FHIR_MEDIA_TYPE", "FHIR_VERSION", "exam_bundle"]
