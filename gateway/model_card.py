"""The gateway's model card: the contract's ``ModelCard`` (contract/model_card.py) with the
fundus ``PreprocessConfig`` it describes.

The gateway never retypes preprocessing parameters: it reads them from the card of the model
version it is about to call (over gRPC from the ``model_card`` signature, or from disk in the
local backend).
"""

from __future__ import annotations

from typing import Self

from contract import model_card
from fundus.config import PreprocessConfig


class ModelCard(model_card.ModelCard):
    """The same schema; ``parse`` also checks the preprocess block (a valid PreprocessConfig of
    ``input_size``)."""

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The PreprocessConfig the model was trained with."""
        return self.checked_preprocess(PreprocessConfig.from_dict)

    @classmethod
    def parse(cls, text: str | bytes) -> Self:
        """Parse and validate card JSON; the preprocess block must be a valid PreprocessConfig."""
        card = super().parse(text)
        card.checked_preprocess(PreprocessConfig.from_dict)
        return card
