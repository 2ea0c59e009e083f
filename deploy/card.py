"""A version directory's model card as deploy reads it: the contract's ``ModelCard`` with the
fundus ``PreprocessConfig`` it names, checked as the gateway checks it (contract/model_card.py)."""

from __future__ import annotations

from pathlib import Path

from contract.model_card import CARD_PATH, ModelCard
from fundus.config import PreprocessConfig


def parse_card(text: str | bytes) -> tuple[ModelCard, PreprocessConfig]:
    """The card and its PreprocessConfig; ValueError when either is invalid or they disagree."""
    card = ModelCard.parse(text)
    return card, card.checked_preprocess(PreprocessConfig.from_dict)


def read_card(version_dir: Path) -> tuple[ModelCard, PreprocessConfig]:
    """``parse_card`` of ``<version_dir>/assets.extra/model_card.json``."""
    return parse_card((version_dir / CARD_PATH).read_text())
