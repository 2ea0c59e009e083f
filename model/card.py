"""The model card ``build_card`` writes to ``assets.extra/model_card.json``.

The schema, its keys and its checks are the contract's (contract/model_card.py); the fixed
blocks (input, outputs, class names, referable grade) come from contract/signatures.py and
contract/grades.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contract.grades import CLASS_NAMES, REFERABLE_MIN_GRADE
from contract.model_card import CARD_FILE, LIMITATIONS, SCHEMA_VERSION, check_export
from contract.signatures import card_input, card_outputs
from model.config import Config
from model.distill import passes_per_image

__all__ = ["CARD_FILE", "CLINICAL_USE_NOTE", "build_card", "validate_card"]

CLINICAL_USE_NOTE = (
    "Research/demo model: not validated for clinical use (see model_card.json metrics and data)."
)


def build_card(
    config: Config,
    version: int,
    folds: list[int],
    thresholds: list[float],
    heatmap_shape: list[int],
    metrics: dict[str, Any] | None,
    fingerprint: str,
    data_counts: dict[str, Any] | None,
    framework: dict[str, str],
    distillation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model card dict (see contract/model_card.py for the schema); ``distillation``: a
    student's ``distill.json`` (its teacher and their agreement)."""
    size = config.image_size
    e = config.eval
    return {
        "schema_version": SCHEMA_VERSION,
        "name": config.export.model_name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": card_input(size),
        "input_size": size,
        "preprocess": config.preprocess_config.to_dict(),
        "class_names": list(CLASS_NAMES),
        "referable": {
            "min_grade": REFERABLE_MIN_GRADE,
            "probability_threshold": e.referable_threshold,
        },
        "referable_threshold": e.referable_threshold,
        "decision": {"rule": e.decision, "thresholds": thresholds},
        "outputs": card_outputs(heatmap_shape),
        "explain": {
            "method": "grad-cam",
            "heatmap_shape": heatmap_shape,
            "layer": "backbone output",
        },
        "ensemble": {"folds": folds, "members": len(folds), "tta": e.tta},
        "passes_per_image": passes_per_image(len(folds), e.tta),
        "teacher": _teacher(distillation),
        "backbone": config.model.backbone,
        "loss": config.loss.name,
        "metrics": metrics,
        "data_fingerprint": fingerprint,
        "data": data_counts,
        "config": config.to_dict(),
        # No model is cleared for clinical use by export alone: the gateway shows this warning
        # until a validated release sets it (after clinical validation, outside this code).
        "clinical_use": False,
        "clinical_use_note": CLINICAL_USE_NOTE,
        "limitations": list(LIMITATIONS),
        "framework": framework,
    }


def _teacher(distillation: dict[str, Any] | None) -> dict[str, Any] | None:
    """The card's ``teacher`` block (None: not a distilled student)."""
    if distillation is None:
        return None
    return {
        "run": distillation["teacher_run"],
        "version": distillation["teacher_version"],
        "folds": distillation["teacher_folds"],
        "tta": distillation["teacher_tta"],
        "passes_per_image": distillation["teacher_passes_per_image"],
        "agreement": distillation["agreement"],
    }


def validate_card(card: dict[str, Any]) -> None:
    """Raise ValueError when a required key is missing, the input spec is inconsistent or the
    card is not a valid ``contract.model_card.ModelCard``."""
    check_export(card)
