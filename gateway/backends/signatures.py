"""Checks of the served signatures against the model card, and output parsing; shared by the
TF Serving and local backends. The checks themselves are the contract's
(contract/signature_checks.py); here they become ``model_mismatch`` errors."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from contract.grades import NUM_GRADES, REFERABLE_MIN_GRADE
from contract.signature_checks import (
    card_signature_problem,
    from_signature_defs,
    readiness_problem,
)
from contract.signatures import GRADE, HEATMAP, PROBABILITIES, REFERABLE_PROBABILITY
from gateway.backends.base import Prediction
from gateway.errors import ApiError
from gateway.model_card import ModelCard
from gateway.protos import types_pb2


def check_card_signature(signatures: dict[str, Any]) -> None:
    """``model_card`` must take ``unused`` int32 [-1] (batchable: TF Serving runs with
    --enable_batching); an export with the old scalar input gets a clear reason."""
    problem = card_signature_problem(from_signature_defs(signatures, types_pb2.DataType.Name))
    if problem is not None:
        raise ApiError("model_mismatch", problem)


def check_signatures(signatures: dict[str, Any], card: ModelCard) -> None:
    """The served ``image`` input must be uint8 [-1, S, S, 3] with S from the card's
    PreprocessConfig, with the contract's outputs. ``signatures`` maps names to SignatureDef
    protos."""
    specs = from_signature_defs(signatures, types_pb2.DataType.Name)
    problem = readiness_problem(specs, card.preprocess_config.size)
    if problem is not None:
        raise ApiError("model_mismatch", problem)


def prediction_from_outputs(
    outputs: dict[str, NDArray[Any]], name: str, version: int, count: int, explain: bool
) -> Prediction:
    """Validate shapes and build a Prediction (grade/referable derived when explain omits them)."""
    probabilities = np.asarray(outputs.get(PROBABILITIES), dtype=np.float32)
    if probabilities.shape != (count, NUM_GRADES):
        raise ApiError("backend_error", f"probabilities have shape {probabilities.shape}")
    grade = outputs.get(GRADE)
    grades = (
        np.asarray(grade, dtype=np.int64).reshape(count)
        if grade is not None
        else probabilities.argmax(axis=1).astype(np.int64)
    )
    referable = outputs.get(REFERABLE_PROBABILITY)
    referable_probability = (
        np.asarray(referable, dtype=np.float32).reshape(count)
        if referable is not None
        else probabilities[:, REFERABLE_MIN_GRADE:].sum(axis=1).astype(np.float32)
    )
    heatmap = None
    if explain:
        raw = outputs.get(HEATMAP)
        if raw is None or np.asarray(raw).ndim != 3 or len(raw) != count:
            raise ApiError("backend_error", "explain returned no usable heatmap")
        heatmap = np.asarray(raw, dtype=np.float32)
    if not np.all((grades >= 0) & (grades < NUM_GRADES)):
        raise ApiError("backend_error", "grade outside 0..4")
    return Prediction(name, version, probabilities, grades, referable_probability, heatmap)
