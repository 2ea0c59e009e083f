"""The model card written by ``model.export`` into ``assets.extra/model_card.json``.

The gateway never retypes preprocessing parameters: it reads them from the card of the model
version it is about to call (over gRPC from the ``model_card`` signature, or from disk in the
local backend).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fundus.config import PreprocessConfig

DEMO_WARNING = "This model is NOT validated for clinical use."
GRADE_NAMES = (
    "No DR",
    "Mild non-proliferative DR",
    "Moderate non-proliferative DR",
    "Severe non-proliferative DR",
    "Proliferative DR",
)


class ModelCard(BaseModel):
    """The fields the gateway relies on; everything else in the card is kept as-is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    version: int | None = None
    input_size: int = Field(gt=0)
    preprocess: dict[str, Any]
    class_names: list[str] = Field(default_factory=lambda: list(GRADE_NAMES))
    referable_threshold: float = Field(0.5, ge=0.0, le=1.0)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The PreprocessConfig the model was trained with."""
        return PreprocessConfig.from_dict(self.preprocess)

    @property
    def clinical_warning(self) -> str | None:
        """The card's "not for clinical use" note, when the card says so (else None)."""
        extra = self.model_extra or {}
        if extra.get("clinical_use") is False:
            return str(extra.get("clinical_use_note") or DEMO_WARNING)
        return None

    @classmethod
    def parse(cls, text: str | bytes) -> ModelCard:
        """Parse and validate card JSON; the preprocess block must be a valid PreprocessConfig."""
        card = cls.model_validate(json.loads(text))
        config = card.preprocess_config
        if config.size != card.input_size:
            raise ValueError(f"card input_size {card.input_size} != preprocess size {config.size}")
        return card
