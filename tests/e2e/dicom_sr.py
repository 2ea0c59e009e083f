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
