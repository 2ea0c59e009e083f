"""Checks of the served signatures against the model card, and output parsing; shared by the
TF Serving and local backends."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.backends.base import CARD_SIGNATURE, EXPLAIN_SIGNATURE, SERVING_SIGNATURE, Prediction
from gateway.errors import ApiError
from gateway.model_card import ModelCard
from gateway.protos import types_pb2

_SERVING_OUTPUTS = {"probabilities", "grade", "referable_probability"}


def check_card_signature(signatures: dict[str, Any]) -> None:
    """``model_card`` must take ``unused`` int32 [-1] (batchable: TF Serving runs with
    --enable_batching); an export with the old scalar input gets a clear reason."""
    signature = signatures.get(CARD_SIGNATURE)
    if signature is None:
        raise ApiError("model_mismatch", f"the served model has no {CARD_SIGNATURE!r} signature")
    unused = signature.inputs.get("unused")
    dims = None if unused is None else [int(d.size) for d in unused.tensor_shape.dim]
    if unused is None or unused.dtype != types_pb2.DT_INT32 or dims != [-1]:
        raise ApiError(
            "model_mismatch",
            f"{CARD_SIGNATURE!r} must take 'unused' int32 [-1] (got {dims}); re-export the "
            "model: TF Serving's batching refuses inputs without a batch dimension",
        )


def check_signatures(signatures: dict[str, Any], card: ModelCard) -> None:
    """The served ``image`` input must be uint8 [-1, S, S, 3] with S from the card's
    PreprocessConfig; outputs per DESIGN.md. ``signatures`` maps names to SignatureDef protos."""
    size = card.preprocess_config.size
    for name in (SERVING_SIGNATURE, EXPLAIN_SIGNATURE):
        signature = signatures.get(name)
        if signature is None:
            raise ApiError("model_mismatch", f"the served model has no {name!r} signature")
        image = signature.inputs.get("image")
        if image is None:
            raise ApiError("model_mismatch", f"{name!r} has no 'image' input")
        if image.dtype != types_pb2.DT_UINT8:
            dtype = types_pb2.DataType.Name(image.dtype)
            raise ApiError("model_mismatch", f"{name!r} image input is {dtype}, expected DT_UINT8")
        dims = [int(d.size) for d in image.tensor_shape.dim]
        if dims[1:] != [size, size, 3]:
            raise ApiError(
                "model_mismatch",
                f"{name!r} image input has shape {dims}, the card's PreprocessConfig says "
                f"[-1, {size}, {size}, 3]",
            )
    missing = _SERVING_OUTPUTS - set(signatures[SERVING_SIGNATURE].outputs)
    if missing:
        raise ApiError("model_mismatch", f"serving_default lacks outputs {sorted(missing)}")
    if "heatmap" not in signatures[EXPLAIN_SIGNATURE].outputs:
        raise ApiError("model_mismatch", "explain signature lacks the 'heatmap' output")


def prediction_from_outputs(
    outputs: dict[str, NDArray[Any]], name: str, version: int, count: int, explain: bool
) -> Prediction:
    """Validate shapes and build a Prediction (grade/referable derived when explain omits them)."""
    probabilities = np.asarray(outputs.get("probabilities"), dtype=np.float32)
    if probabilities.shape != (count, 5):
        raise ApiError("backend_error", f"probabilities have shape {probabilities.shape}")
    grade = outputs.get("grade")
    grades = (
        np.asarray(grade, dtype=np.int64).reshape(count)
        if grade is not None
        else probabilities.argmax(axis=1).astype(np.int64)
    )
    referable = outputs.get("referable_probability")
    referable_probability = (
        np.asarray(referable, dtype=np.float32).reshape(count)
        if referable is not None
        else probabilities[:, 2:].sum(axis=1).astype(np.float32)
    )
    heatmap = None
    if explain:
        raw = outputs.get("heatmap")
        if raw is None or np.asarray(raw).ndim != 3 or len(raw) != count:
            raise ApiError("backend_error", "explain returned no usable heatmap")
        heatmap = np.asarray(raw, dtype=np.float32)
    if not np.all((grades >= 0) & (grades <= 4)):
        raise ApiError("backend_error", "grade outside 0..4")
    return Prediction(name, version, probabilities, grades, referable_probability, heatmap)
