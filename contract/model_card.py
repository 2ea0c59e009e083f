"""The model card: ``assets.extra/model_card.json`` beside the SavedModel, and the ``model_card``
signature's answer. Written by model export, read by the gateway and by deploy validation.

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
limitations         what the model cannot see (LIMITATIONS: diabetic macular oedema)
clinical_use        false unless a clinically validated release says otherwise; the gateway
                    adds clinical_use_note to every answer while it is false
ensemble            {"folds": [...], "members": n, "tta": "none"|"hflip"|"flip4"}
passes_per_image    network passes per photograph (members x test-time views): the cost
teacher             a distilled student's teacher: {"run", "version", "folds", "tta",
                    "passes_per_image", "agreement": {"test"|"holdout": {"n", "grade",
                    "referable", "mean_abs_prob_diff"}}}; null for an ordinary model
backbone, loss      e.g. "EfficientNetB3", "ce"
metrics             {"oof": {...}, "test": {...}} headline numbers (acc, auc, qwk, macro_f1,
                    referable sensitivity/specificity/auroc, ece) or null when not evaluated
data_fingerprint    sha256 of the PreprocessConfig + (id, grade, source sha1) of training images
data                counts (records, cv, test, excluded, per-grade)
config              the run's resolved config
framework           {"tensorflow": ..., "keras": ...}
```

``ModelCard`` types the fields readers rely on and keeps every other key as-is. The preprocess
block stays a dict here (the contract does not import ``fundus``): ``checked_preprocess`` builds
the caller's PreprocessConfig from it and checks it against ``input_size``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from contract.grades import GRADE_NAMES
from contract.signatures import card_input

SCHEMA_VERSION = 1
CARD_FILE = "model_card.json"
CARD_PATH = f"assets.extra/{CARD_FILE}"
"""Relative to a SavedModel version directory."""
MACULAR_OEDEMA_LIMITATION = (
    "The model grades retinopathy only: it cannot detect diabetic macular oedema, which also "
    "threatens vision; examine the macula clinically or with OCT."
)
LIMITATIONS = (MACULAR_OEDEMA_LIMITATION,)
"""What every exported card lists under ``limitations`` (the gateway repeats the first one in
every exam's ``patient.caveat``)."""
DEMO_WARNING = "This model is NOT validated for clinical use."
"""Shown when a card says ``clinical_use: false`` without a ``clinical_use_note``."""
EXPORT_KEYS = (
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
"""Keys every exported card has (readers need fewer: see ``ModelCard``)."""


class _Sized(Protocol):
    @property
    def size(self) -> int: ...


PreprocessT = TypeVar("PreprocessT", bound=_Sized)


class ModelCard(BaseModel):
    """The fields readers rely on; everything else in the card is kept as-is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    version: int | None = None
    input_size: int = Field(gt=0)
    preprocess: dict[str, Any]
    class_names: list[str] = Field(default_factory=lambda: list(GRADE_NAMES))
    referable_threshold: float = Field(0.5, ge=0.0, le=1.0)
    limitations: list[str] = Field(default_factory=list)
    passes_per_image: int | None = Field(None, ge=1)
    """None on cards exported before it was a key."""

    @property
    def clinical_warning(self) -> str | None:
        """The card's "not for clinical use" note, when the card says so (else None)."""
        extra = self.model_extra or {}
        if extra.get("clinical_use") is False:
            return str(extra.get("clinical_use_note") or DEMO_WARNING)
        return None

    def checked_preprocess(self, from_dict: Callable[[dict[str, Any]], PreprocessT]) -> PreprocessT:
        """``from_dict(preprocess)`` (fundus ``PreprocessConfig.from_dict``), which must agree
        with ``input_size``; ValueError otherwise."""
        config = from_dict(self.preprocess)
        if config.size != self.input_size:
            raise ValueError(f"card input_size {self.input_size} != preprocess size {config.size}")
        return config

    @classmethod
    def parse(cls, text: str | bytes) -> Self:
        """Validate card JSON (pydantic's ValidationError is a ValueError)."""
        return cls.model_validate(json.loads(text))


def check_export(card: dict[str, Any]) -> ModelCard:
    """An exported card: every ``EXPORT_KEYS`` key, an input spec that agrees with
    ``preprocess.size``, and a valid ``ModelCard``; ValueError otherwise."""
    missing = [key for key in EXPORT_KEYS if key not in card]
    if missing:
        raise ValueError(f"model card misses {missing}")
    size = card["preprocess"]["size"]
    if card["input"]["shape"] != card_input(size)["shape"] or card["input_size"] != size:
        raise ValueError("model card input shape does not match preprocess.size")
    return ModelCard.model_validate(card)
