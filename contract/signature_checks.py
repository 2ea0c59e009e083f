"""Pure checks of served signatures against the contract (contract/signatures.py).

They work on plain ``SignatureSpec`` values; ``from_signature_defs`` reads those from
SignatureDef protos (TF Serving's GetModelMetadata answer, or ``saved_model.pb``) without
importing any proto module: the caller passes its ``DataType.Name``. The gateway (readiness),
deploy/validate_model.py and model export all check through here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from contract.signatures import (
    CARD_INPUT,
    CARD_INPUT_SPEC,
    CARD_SIGNATURE,
    EXPLAIN_SIGNATURE,
    HEATMAP,
    IMAGE_INPUT,
    IMAGE_SIGNATURES,
    SERVING_OUTPUTS,
    SERVING_SIGNATURE,
    Shape,
    SignatureSpec,
    TensorSpec,
    image_spec,
    required_signatures,
)

_FROM_PROTO = {
    "DT_UINT8": "uint8",
    "DT_FLOAT": "float32",
    "DT_INT64": "int64",
    "DT_INT32": "int32",
    "DT_STRING": "string",
}
_TO_PROTO = {value: key for key, value in _FROM_PROTO.items()}


def proto_dtype(dtype: str) -> str:
    """The TF DataType name of a contract dtype (``float32`` -> ``DT_FLOAT``), for messages."""
    return _TO_PROTO.get(dtype, dtype)


def shape_text(shape: Shape | None) -> str:
    """A shape as TF Serving writes it: ``[-1, 64, 64, 3]`` (-1 = any); ``None`` = unknown rank."""
    if shape is None:
        return "None"
    return str([-1 if dim is None else dim for dim in shape])


def from_signature_defs(
    defs: Mapping[str, Any], dtype_name: Callable[[int], str]
) -> dict[str, SignatureSpec]:
    """Plain specs of SignatureDef protos; ``dtype_name`` is ``types_pb2.DataType.Name``."""

    def tensor(info: Any) -> TensorSpec:
        name = dtype_name(info.dtype)
        shape = (
            None
            if info.tensor_shape.unknown_rank
            else tuple(None if int(d.size) < 0 else int(d.size) for d in info.tensor_shape.dim)
        )
        return TensorSpec(_FROM_PROTO.get(name, name), shape)

    return {
        name: SignatureSpec(
            {key: tensor(info) for key, info in signature.inputs.items()},
            {key: tensor(info) for key, info in signature.outputs.items()},
        )
        for name, signature in defs.items()
    }


def readiness_problem(signatures: Mapping[str, SignatureSpec], size: int) -> str | None:
    """What stops the gateway from calling the image signatures (None: they fit): an ``image``
    input uint8 [-1, S, S, 3] with S from the card, the serving outputs and the heatmap."""
    expected = image_spec(size)
    for name in IMAGE_SIGNATURES:
        signature = signatures.get(name)
        if signature is None:
            return f"the served model has no {name!r} signature"
        image = signature.inputs.get(IMAGE_INPUT)
        if image is None:
            return f"{name!r} has no {IMAGE_INPUT!r} input"
        if image.dtype != expected.dtype:
            return (
                f"{name!r} image input is {proto_dtype(image.dtype)}, "
                f"expected {proto_dtype(expected.dtype)}"
            )
        if image.shape is None or image.shape[1:] != (expected.shape or ())[1:]:
            return (
                f"{name!r} image input has shape {shape_text(image.shape)}, the card's "
                f"PreprocessConfig says {shape_text(expected.shape)}"
            )
    missing = set(SERVING_OUTPUTS) - set(signatures[SERVING_SIGNATURE].outputs)
    if missing:
        return f"{SERVING_SIGNATURE} lacks outputs {sorted(missing)}"
    if HEATMAP not in signatures[EXPLAIN_SIGNATURE].outputs:
        return f"{EXPLAIN_SIGNATURE} signature lacks the {HEATMAP!r} output"
    return None


def card_signature_problem(signatures: Mapping[str, SignatureSpec]) -> str | None:
    """``model_card`` must take ``unused`` int32 [-1] (batchable); None when it does."""
    signature = signatures.get(CARD_SIGNATURE)
    if signature is None:
        return f"the served model has no {CARD_SIGNATURE!r} signature"
    unused = signature.inputs.get(CARD_INPUT)
    if unused is None or unused != CARD_INPUT_SPEC:
        got = "None" if unused is None else shape_text(unused.shape)
        return (
            f"{CARD_SIGNATURE!r} must take {CARD_INPUT!r} int32 [-1] (got {got}); re-export the "
            "model: TF Serving's batching refuses inputs without a batch dimension"
        )
    return None


def _fits(actual: Shape | None, expected: Shape | None) -> bool:
    if expected is None:
        return True
    return (
        actual is not None
        and len(actual) == len(expected)
        and all(e is None or e == a for a, e in zip(actual, expected, strict=True))
    )


def contract_problems(signatures: Mapping[str, SignatureSpec], size: int) -> list[str]:
    """Every required input and output with its dtype and shape (``required_signatures``);
    signatures that are missing altogether are the caller's to report."""
    problems = []
    for name, wanted in required_signatures(size).items():
        signature = signatures.get(name)
        if signature is None:
            continue
        for side, tensors, have in (
            ("input", wanted.inputs, signature.inputs),
            ("output", wanted.outputs, signature.outputs),
        ):
            for key, spec in tensors.items():
                where = f"{name} {side} {key}"
                actual = have.get(key)
                if actual is None:
                    problems.append(f"{where}: missing")
                    continue
                if actual.dtype != spec.dtype:
                    problems.append(
                        f"{where}: dtype {proto_dtype(actual.dtype)}, "
                        f"expected {proto_dtype(spec.dtype)}"
                    )
                if not _fits(actual.shape, spec.shape):
                    problems.append(
                        f"{where}: shape {shape_text(actual.shape)}, "
                        f"expected {shape_text(spec.shape)} (-1 = any)"
                    )
    return problems
