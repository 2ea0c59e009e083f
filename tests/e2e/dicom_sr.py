"""Read back what a result SR says (tests only): the coded findings by 99DRG/SCT concept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset


def _concept(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return str(code.CodingSchemeDesignator), str(code.CodeValue)


def walk(ds: Dataset) -> Iterator[Dataset]:
    """Every content item below ``ds``, depth first."""
    for item in ds.get("ContentSequence", []):
        yield item
        yield from walk(item)


def children(item: Dataset, scheme: str, value: str) -> list[Dataset]:
    """The direct content items of ``item`` with this concept name."""
    return [c for c in item.get("ContentSequence", []) if _concept(c) == (scheme, value)]


def summarize_study(ds: Dataset) -> dict[str, Any]:
    """A study SR: each eye's findings (photographs apart), each photograph's, the patient's.

    ``{"eyes": {"R"|"L": {..., "photographs": [summary, ...]}}, "patient": {...},
    "algorithm_version": ..., "images": [...]}``; an eye's summary has ``vision_threatening``.
    """
    (findings,) = children(ds, "DCM", "121070")
    out: dict[str, Any] = {"eyes": {}, "images": summarize(ds)["images"]}
    for item in findings.ContentSequence:
        if _concept(item) == ("DCM", "111003"):
            out["algorithm_version"] = str(item.TextValue)
    for eye in children(findings, "99DRG", "EYE"):
        photos = children(eye, "99DRG", "PHOTOGRAPH")
        own = Dataset()
        own.ContentSequence = [c for c in eye.ContentSequence if c not in photos]
        summary = summarize(own)
        for item in children(eye, "99DRG", "VISION-THREAT"):
            summary["vision_threatening"] = _yes(item)
        summary["photographs"] = [summarize(photo) for photo in photos]
        out["eyes"][summary["laterality"]] = summary
    (patient,) = children(findings, "99DRG", "PATIENT")
    out["patient"] = {
        "referable": _yes(children(patient, "99DRG", "REFERABLE-DR")[0]),
        "vision_threatening": _yes(children(patient, "99DRG", "VISION-THREAT")[0]),
        "insufficient_quality": _yes(children(patient, "99DRG", "INSUFF-QUALITY")[0]),
        "next_step": str(
            children(patient, "99DRG", "NEXT-STEP")[0].ConceptCodeSequence[0].CodeValue
        ),
        "missing_eyes": [
            {"24028007": "right", "7771000": "left"}[str(item.ConceptCodeSequence[0].CodeValue)]
            for item in children(patient, "99DRG", "EYE-MISSING")
        ],
    }
    return out


def _yes(item: Dataset) -> bool:
    value = item.ConceptCodeSequence[0]
    return (str(value.CodingSchemeDesignator), str(value.CodeValue)) == ("SCT", "373066001")


def summarize(ds: Dataset) -> dict[str, Any]:
    """Grade, referable, gradable, reasons, laterality, algorithm and referenced images."""
    summary: dict[str, Any] = {"reasons": [], "images": set(), "probabilities": {}}
    for item in walk(ds):
        concept = _concept(item)
        value_type = str(item.ValueType)
        if value_type == "CODE":
            value = item.ConceptCodeSequence[0]
            coded = (str(value.CodingSchemeDesignator), str(value.CodeValue))
        if value_type == "NUM":
            number = float(item.MeasuredValueSequence[0].NumericValue)
        if concept == ("99DRG", "ICDR-GRADE"):
            summary["grade"] = int(number)
        elif concept == ("99DRG", "GRADABLE"):
            summary["gradable"] = coded == ("SCT", "373066001")
        elif concept == ("99DRG", "REFERABLE-DR"):
            summary["referable"] = coded == ("SCT", "373066001")
        elif concept == ("99DRG", "UNGRADABLE-RSN"):
            summary["reasons"].append(coded[1])
        elif concept == ("SCT", "4855003"):
            summary["severity"] = coded
        elif concept == ("SCT", "272741003"):
            summary["laterality"] = {"24028007": "R", "7771000": "L"}[coded[1]]
        elif concept == ("99DRG", "NEXT-STEP"):
            summary["next_step"] = coded[1]
        elif concept == ("99DRG", "P-REFERABLE"):
            summary["referable_probability"] = number
        elif concept[0] == "99DRG" and concept[1].startswith("P-ICDR-"):
            summary["probabilities"][concept[1][-1]] = number
        elif concept == ("DCM", "111001"):
            summary["algorithm_name"] = str(item.TextValue)
        elif concept == ("DCM", "111003"):
            summary["algorithm_version"] = str(item.TextValue)
        elif value_type == "IMAGE":
            summary["images"].add(str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
    summary["images"] = sorted(summary["images"])
    return summary
