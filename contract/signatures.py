"""The serving signatures of an exported model: names, tensor keys, dtypes and shapes.

Every input and output has the batch dimension first (``None`` = any size): TF Serving runs with
``--enable_batching`` and batches every signature.

- ``serving_default(image: uint8 [N, S, S, 3])`` -> ``probabilities`` float32 [N, 5], ``grade``
  int64 [N], ``referable_probability`` float32 [N] (= P(grade >= REFERABLE_MIN_GRADE));
- ``explain(image)`` -> the same ``probabilities`` and ``heatmap`` float32 [N, h, w] in [0, 1]
  (export also returns ``grade`` and ``referable_probability``; the gateway derives them when
  they are missing);
- ``model_card(unused: int32 [N])`` -> ``model_card`` string [N]: the card JSON, once per row.

S is the model card's ``input_size`` (= its PreprocessConfig size).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contract.grades import NUM_GRADES

SERVING_SIGNATURE = "serving_default"
EXPLAIN_SIGNATURE = "explain"
CARD_SIGNATURE = "model_card"
IMAGE_SIGNATURES = (SERVING_SIGNATURE, EXPLAIN_SIGNATURE)
"""The signatures that take images."""
SIGNATURES = (*IMAGE_SIGNATURES, CARD_SIGNATURE)
"""Every signature the gateway calls (and export warms up)."""

IMAGE_INPUT = "image"
CARD_INPUT = "unused"
CARD_OUTPUT = "model_card"
PROBABILITIES = "probabilities"
GRADE = "grade"
REFERABLE_PROBABILITY = "referable_probability"
HEATMAP = "heatmap"
SERVING_OUTPUTS = (PROBABILITIES, GRADE, REFERABLE_PROBABILITY)
HEATMAP_RANGE = (0.0, 1.0)

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's dtype (numpy-style name: ``uint8``, ``float32``, ...) and shape: ``None`` for
    a dimension of any size, ``shape=None`` for an unknown rank."""

    dtype: str
    shape: Shape | None


@dataclass(frozen=True)
class SignatureSpec:
    """Input and output tensors by key."""

    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


def image_spec(size: int) -> TensorSpec:
    """The ``image`` input: uint8 [N, S, S, 3], pixels as ``fundus`` preprocessed them."""
    return TensorSpec("uint8", (None, size, size, 3))


OUTPUT_SPECS: dict[str, TensorSpec] = {
    PROBABILITIES: TensorSpec("float32", (None, NUM_GRADES)),
    GRADE: TensorSpec("int64", (None,)),
    REFERABLE_PROBABILITY: TensorSpec("float32", (None,)),
    HEATMAP: TensorSpec("float32", (None, None, None)),
}
CARD_INPUT_SPEC = TensorSpec("int32", (None,))
CARD_OUTPUT_SPEC = TensorSpec("string", (None,))


def required_signatures(size: int) -> dict[str, SignatureSpec]:
    """What an exported model must serve for input size ``size``."""
    image = {IMAGE_INPUT: image_spec(size)}
    return {
        SERVING_SIGNATURE: SignatureSpec(
            image, {key: OUTPUT_SPECS[key] for key in SERVING_OUTPUTS}
        ),
        EXPLAIN_SIGNATURE: SignatureSpec(
            image, {key: OUTPUT_SPECS[key] for key in (PROBABILITIES, HEATMAP)}
        ),
        CARD_SIGNATURE: SignatureSpec(
            {CARD_INPUT: CARD_INPUT_SPEC}, {CARD_OUTPUT: CARD_OUTPUT_SPEC}
        ),
    }


def card_input(size: int) -> dict[str, Any]:
    """The model card's ``input`` block."""
    spec = image_spec(size)
    return {"name": IMAGE_INPUT, "dtype": spec.dtype, "shape": list(spec.shape or ())}


def card_outputs(heatmap_shape: list[int]) -> dict[str, Any]:
    """The model card's ``outputs`` block (the explain heatmap is [N, h, w] for this model)."""

    def entry(key: str) -> dict[str, Any]:
        spec = OUTPUT_SPECS[key]
        return {"dtype": spec.dtype, "shape": list(spec.shape or ())}

    serving = {key: entry(key) for key in SERVING_OUTPUTS}
    heatmap = {
        "dtype": OUTPUT_SPECS[HEATMAP].dtype,
        "shape": [None, *heatmap_shape],
        "range": list(HEATMAP_RANGE),
    }
    return {SERVING_SIGNATURE: serving, EXPLAIN_SIGNATURE: {**serving, HEATMAP: heatmap}}
