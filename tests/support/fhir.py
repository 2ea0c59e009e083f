"""Two independent FHIR validators for every Bundle the tests produce: fhir.resources (the
R4B pydantic models the gateway builds with) and fhirclient (SMART on FHIR's R4 4.0.1 models,
generated separately, strict: unknown or wrongly typed elements and missing required ones
raise)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhirclient.models.bundle import Bundle as SmartBundle

from gateway.fhir import systems

AI_LABEL = {"system": systems.V3_OBSERVATION_VALUE, "code": "AIAST"}


def validate(bundle: dict[str, Any]) -> None:
    """Raise unless both validators accept ``bundle`` and both read back the same content."""
    parsed = Bundle.model_validate(bundle)
    smart = SmartBundle(jsondict=bundle, strict=True)
    assert parsed.type == smart.type == "collection"
    assert len(parsed.entry or []) == len(smart.entry or [])
    assert smart.as_json() == bundle, "fhirclient reads back different content"


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The entries' resources of one resourceType."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def codes(concept: dict[str, Any]) -> set[tuple[str, str]]:
    """(system, code) of a CodeableConcept."""
    return {(c["system"], c["code"]) for c in concept.get("coding", [])}


def is_ai_labelled(resource: dict[str, Any]) -> bool:
    """The AI Transparency on FHIR label sits in meta.security."""
    labels = resource.get("meta", {}).get("security", [])
    return any({k: label.get(k) for k in AI_LABEL} == AI_LABEL for label in labels)
