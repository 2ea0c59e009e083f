"""A toy SavedModel with the serving contract of contract/signatures.py (serving_default, explain,
model_card, assets.extra/{model_card.json, tf_serving_warmup_requests}), small enough to save in a
second.

Used to test deploy/validate_model.py without the trained export, and to break one thing at a
time (``defect``) so each check is seen to fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contract import signatures as sig
from contract.grades import CLASS_NAMES, REFERABLE_MIN_GRADE
from contract.model_card import CARD_PATH
from fundus import PreprocessConfig
from model.warmup import WARMUP_FILE

DEFECTS = (
    "none",
    "card_size_mismatch",  # the card's PreprocessConfig size differs from the signature's
    "no_softmax",  # probabilities do not sum to 1
    "no_warmup",  # assets.extra/tf_serving_warmup_requests missing
    "warmup_wrong_input",  # warmup request names an input the signature lacks
    "no_explain",  # explain signature missing
    "float_input",  # image input is float32 instead of uint8
    "scalar_card",  # model_card takes a rank-0 input (TF Serving's batching refuses it)
    "card_one_row",  # model_card answers one row whatever the batch (cannot be split back)
    "warmup_batch_1_only",  # warmup records at batch size 1 only (the pre-issue-14 warmup)
    "warmup_too_large",  # a warmup record above max_batch_size (TF Serving fails the load)
)


def build_toy_model(root: Path, version: int = 1, size: int = 32, defect: str = "none") -> Path:
    """Write ``root/dr_grader/<version>`` and return that directory."""
    import tensorflow as tf

    if defect not in DEFECTS:
        raise ValueError(defect)
    card = {
        "name": "dr_grader",
        "version": version,
        "input_size": size,
        "preprocess": PreprocessConfig(size=size).to_dict(),
        "class_names": list(CLASS_NAMES),
        "referable_threshold": 0.5,
    }
    if defect == "card_size_mismatch":
        card["input_size"] = size * 2
        card["preprocess"] = PreprocessConfig(size=size * 2).to_dict()
    card_json = json.dumps(card, sort_keys=True)
    input_dtype = tf.float32 if defect == "float_input" else tf.uint8
    image_spec = tf.TensorSpec([None, size, size, 3], input_dtype, name=sig.IMAGE_INPUT)
    # The contract: int32 [N] -> string [N]; "scalar_card" is the export before issue 14 (rank 0).
    card_shape = [] if defect == "scalar_card" else [None]
    card_spec = tf.TensorSpec(card_shape, tf.int32, name=sig.CARD_INPUT)

    class Toy(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.Variable(
                tf.reshape(tf.range(15, dtype=tf.float32) / 15.0 - 0.5, [3, 5]), name="w"
            )

        def _logits(self, image: tf.Tensor) -> tf.Tensor:
            pixels = tf.cast(image, tf.float32)  # [0, 255], never /255 (model/serving.py)
            return tf.reduce_mean(pixels, axis=[1, 2]) / 64.0 @ self.weights

        def _probabilities(self, image: tf.Tensor) -> tf.Tensor:
            logits = self._logits(image)
            if defect == "no_softmax":
                return tf.sigmoid(logits)
            return tf.nn.softmax(logits)

        @tf.function(input_signature=[image_spec])  # type: ignore[untyped-decorator]
        def serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
            probabilities = self._probabilities(image)
            return {
                sig.PROBABILITIES: probabilities,
                sig.GRADE: tf.argmax(probabilities, axis=1, output_type=tf.int64),
                sig.REFERABLE_PROBABILITY: tf.reduce_sum(
                    probabilities[:, REFERABLE_MIN_GRADE:], axis=1
                ),
            }

        @tf.function(input_signature=[image_spec])  # type: ignore[untyped-decorator]
        def explain(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
            pixels = tf.cast(image, tf.float32)
            heat = tf.reduce_mean(pixels, axis=3)[:, ::4, ::4] / 255.0
            return {sig.PROBABILITIES: self._probabilities(image), sig.HEATMAP: heat}

        @tf.function(input_signature=[card_spec])  # type: ignore[untyped-decorator]
        def model_card(self, unused: tf.Tensor) -> dict[str, tf.Tensor]:
            if defect == "scalar_card":
                return {sig.CARD_OUTPUT: tf.constant(card_json)}
            if defect == "card_one_row":  # static shape [None], but always one row
                rows = tf.minimum(tf.shape(unused)[:1], 1)
                return {sig.CARD_OUTPUT: tf.fill(rows, tf.constant(card_json))}
            return {sig.CARD_OUTPUT: tf.fill(tf.shape(unused)[:1], tf.constant(card_json))}

    module = Toy()
    signatures = {sig.SERVING_SIGNATURE: module.serve, sig.CARD_SIGNATURE: module.model_card}
    if defect != "no_explain":
        signatures[sig.EXPLAIN_SIGNATURE] = module.explain
    target = root / "dr_grader" / str(version)
    tf.saved_model.save(module, str(target), signatures=signatures)

    (target / CARD_PATH).parent.mkdir()
    (target / CARD_PATH).write_text(card_json)
    if defect != "no_warmup":
        _write_warmup(target / "assets.extra" / WARMUP_FILE, size, defect)
    return target


def _write_warmup(path: Path, size: int, defect: str) -> None:
    """model/'s warmup records (every signature x the k8s configs' batch sizes), or a defect."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    from model.tfserving_batching import default_warmup_batch_sizes
    from model.warmup import warmup_requests

    sizes = default_warmup_batch_sizes()
    signatures: tuple[str, ...] = sig.SIGNATURES
    if defect in ("warmup_batch_1_only", "scalar_card"):
        sizes = [1]  # scalar_card: the whole export as it was before issue 14
    elif defect == "warmup_too_large":
        sizes = [*sizes, 16]
    if defect in ("scalar_card", "card_one_row"):  # no model_card record: the version loads
        signatures = sig.SIGNATURES[:2]
    logs: list[Any] = warmup_requests("dr_grader", size, sizes, signatures)
    for log in logs:
        inputs = log.predict_log.request.inputs
        if defect == "float_input" and sig.IMAGE_INPUT in inputs:
            inputs[sig.IMAGE_INPUT].dtype = types_pb2.DT_FLOAT
            inputs[sig.IMAGE_INPUT].float_val[:] = [
                float(v) for v in inputs[sig.IMAGE_INPUT].int_val
            ]
            inputs[sig.IMAGE_INPUT].ClearField("int_val")
    if defect == "warmup_wrong_input":
        first = logs[0].predict_log.request.inputs
        first["pixels"].CopyFrom(first[sig.IMAGE_INPUT])
        del first[sig.IMAGE_INPUT]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
