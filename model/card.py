"""``assets.extra/model_card.json``: what the gateway reads beside the SavedModel.

Schema (version 1; keys are stable, new keys may be added):

```
schema_version      1
name, version       model name (TF Serving model) and integer version
created             ISO-8601 UTC time of export
input               {"name": "image", "dtype": "uint8", "shape": [null, S, S, 3]}
input_size          S (= preprocess.size)
preprocess          fundus PreprocessConfig.to_dict(): feed PreprocessConfig.from_dict(...) to
                    fundus.load_and_preprocess so serving sees exactly the training pixels
class_names         ["no DR", "mild", "moderate", "severe", "proliferative"] (index = grade)
referable           {"min_grade": 2, "probability_threshold": t} — refer when
                    referable_probability >= t
referable_threshold t (same value, top level for convenience)
decision            {"rule": "argmax"|"thresholds", "thresholds": [t1..t4]}: how `grade` was
                    derived (thresholds: grade = #{t_k < sum_k k*p_k}, chosen on OOF for QWK)
outputs             serving_default / explain output names, dtypes and shapes
explain             {"method": "grad-cam", "heatmap_shape": [h, w], "layer": ...}
clinical_use        false unless a clinically validated release says otherwise; the gateway
                    adds clinical_use_note to every answer while it is false
ensemble            {"folds": [...], "members": n, "tta": "none"|"hflip"|"flip4"}
backbone, loss      e.g. "EfficientNetB3", "ce"
metrics             {"oof": {...}, "test": {...}} headline numbers (acc, auc, qwk, macro_f1,
                    referable sensitivity/specificity/auroc, ece) or null when not evaluated
data_fingerprint    sha256 of the PreprocessConfig + (id, grade, source sha1) of training images
data                counts (records, cv, test, excluded, per-grade)
config              the run's resolved config
framework           {"tensorflow": ..., "keras": ...}
```
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from model.config import Config
from model.metrics import REFERABLE_MIN_GRADE

CLASS_NAMES = ["no DR", "mild", "moderate", "severe", "proliferative"]
CARD_FILE = "model_card.json"
CLINICAL_USE_NOTE = (
    "Research/demo model: not validated for clinical use (see model_card.json metrics and data)."
)
REQUIRED_KEYS = (
    "schema_version",
    "name",
    "version",
    "created",
    "input",
    "input_size",
    "preprocess",
    "class_names",
    "referable",
    "referable_threshold",
    "decision",
    "outputs",
    "explain",
    "ensemble",
    "metrics",
    "data_fingerprint",
    "config",
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
) -> dict[str, Any]:
    """The model card dict (see the module docstring for the schema)."""
    size = config.image_size
    e = config.eval
    return {
        "schema_version": 1,
        "name": config.export.model_name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": {"name": "image", "dtype": "uint8", "shape": [None, size, size, 3]},
        "input_size": size,
        "preprocess": config.preprocess_config.to_dict(),
        "class_names": CLASS_NAMES,
        "referable": {
            "min_grade": REFERABLE_MIN_GRADE,
            "probability_threshold": e.referable_threshold,
        },
        "referable_threshold": e.referable_threshold,
        "decision": {"rule": e.decision, "thresholds": thresholds},
        "outputs": {
            "serving_default": {
                "probabilities": {"dtype": "float32", "shape": [None, 5]},
                "grade": {"dtype": "int64", "shape": [None]},
                "referable_probability": {"dtype": "float32", "shape": [None]},
            },
            "explain": {
                "probabilities": {"dtype": "float32", "shape": [None, 5]},
                "grade": {"dtype": "int64", "shape": [None]},
                "referable_probability": {"dtype": "float32", "shape": [None]},
                "heatmap": {
                    "dtype": "float32",
                    "shape": [None, *heatmap_shape],
                    "range": [0.0, 1.0],
                },
            },
        },
        "explain": {
            "method": "grad-cam",
            "heatmap_shape": heatmap_shape,
            "layer": "backbone output",
        },
        "ensemble": {"folds": folds, "members": len(folds), "tta": e.tta},
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
        "framework": framework,
    }


def validate_card(card: dict[str, Any]) -> None:
    """Raise ValueError when a required key is missing or the input spec is inconsistent."""
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise ValueError(f"model card misses {missing}")
    size = card["preprocess"]["size"]
    if card["input"]["shape"] != [None, size, size, 3] or card["input_size"] != size:
        raise ValueError("model card input shape does not match preprocess.size")
