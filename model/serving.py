"""The SavedModel graph: fold ensemble + TTA + decision rule + Grad-CAM, TF backend only.

Signatures (names, keys, dtypes and shapes: contract/signatures.py):
- ``serving_default(image: uint8 [N,S,S,3])`` -> ``probabilities`` float32 [N,5], ``grade`` int64
  [N], ``referable_probability`` float32 [N] (= P(grade >= 2)).
- ``explain(image)`` -> ``probabilities`` float32 [N,5] (same values as serving_default) and
  ``heatmap`` float32 [N,h,w] in [0,1]: Grad-CAM of the served grade on the last feature map
  (h = w = S/32 for EfficientNet), averaged over the fold models, max-normalised per image.
- ``model_card(unused: int32 [N])`` -> ``model_card`` string [N]: the card JSON, one copy per row.

Every input and output has the batch dimension first, shared by inputs and outputs: TF Serving
runs with ``--enable_batching`` and batches every signature, refusing rank-0 inputs and outputs
whose 0th dimension is not the (padded) batch size (model/tfserving_batching.py).

Pixels are cast to float32 in the graph and passed as 0..255; the EfficientNet graph rescales
them itself (never /255). Probabilities = mean over fold models x TTA views, in that order, which
is what ``model.batches.predict_probs`` computes in Keras (the views of a batch go through each
fold model as one stacked batch; sums differ from Keras only by float rounding, ~1e-7).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from contract.grades import REFERABLE_MIN_GRADE
from contract.signatures import (
    CARD_INPUT,
    CARD_INPUT_SPEC,
    CARD_OUTPUT,
    CARD_SIGNATURE,
    EXPLAIN_SIGNATURE,
    GRADE,
    HEATMAP,
    HEATMAP_RANGE,
    IMAGE_INPUT,
    PROBABILITIES,
    REFERABLE_PROBABILITY,
    SERVING_SIGNATURE,
    TensorSpec,
    image_spec,
)
from model.decision import DEFAULT_THRESHOLDS
from model.network import NUM_CLASSES, backbone_of, head_forward, tta_views


def save_serving_model(
    models: list[keras.Model],
    size: int,
    tta: str,
    rule: str,
    thresholds: list[float] | None,
    path: str,
    card_json: str,
) -> None:
    """Trace the signatures and write the SavedModel to ``path``.

    Besides ``serving_default`` and ``explain``, a ``model_card`` signature (input ``unused``
    int32 [N], output ``model_card`` string [N]) returns ``card_json``, the same text as
    ``assets.extra/model_card.json``, once per input row: the gateway reads the
    PreprocessConfig of the exact version it calls from TF Serving itself (TF Serving refuses
    signatures without inputs, and with batching on, inputs or outputs without a batch
    dimension; padding to an allowed batch size adds rows, so the output follows the input).

    A plain ``tf.Module`` holding the variables is saved with the two concrete functions as
    its only signatures; this is about 3x faster to write than ``keras.export.ExportArchive``
    (which re-traces every endpoint for variable tracking and saves gradient functions).
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("export needs KERAS_BACKEND=tensorflow (train anywhere, export with TF)")
    import tensorflow as tf

    cut = tf.constant(list(thresholds or DEFAULT_THRESHOLDS), tf.float32)
    grades = tf.range(NUM_CLASSES, dtype=tf.float32)
    n_views = len(tta_views(np.zeros((1, 2, 2, 3), np.float32), tta))

    def tf_spec(spec: TensorSpec, name: str) -> Any:
        return tf.TensorSpec(spec.shape, tf.as_dtype(spec.dtype), name=name)

    spec = [tf_spec(image_spec(size), IMAGE_INPUT)]

    def stacked_views(x: Any) -> Any:
        """All TTA views in one batch [V*N, S, S, 3] (one model call per fold)."""
        return tf.concat(tta_views(x, tta), axis=0) if n_views > 1 else x

    def view_mean(p: Any) -> Any:
        return tf.reduce_mean(tf.reshape(p, [n_views, -1, NUM_CLASSES]), axis=0)

    def grade_of(p: Any) -> Any:
        if rule == "argmax":
            return tf.argmax(p, axis=1, output_type=tf.int64)
        score = tf.reduce_sum(p * grades[None, :], axis=1)
        return tf.reduce_sum(tf.cast(score[:, None] > cut[None, :], tf.int64), axis=1)

    def serve(image: Any) -> dict[str, Any]:
        x = stacked_views(tf.cast(image, tf.float32))
        p = tf.add_n([view_mean(model(x, training=False)) for model in models]) / float(len(models))
        return {
            PROBABILITIES: p,
            GRADE: grade_of(p),
            REFERABLE_PROBABILITY: tf.reduce_sum(p[:, REFERABLE_MIN_GRADE:], axis=1),
        }

    def explain(image: Any) -> dict[str, Any]:
        x = stacked_views(tf.cast(image, tf.float32))
        n = tf.shape(image)[0]
        features, view_probs = [], []
        for model in models:
            f = backbone_of(model)(x, training=False)
            features.append(f)
            view_probs.append(view_mean(head_forward(model, f)))
        p = tf.add_n(view_probs) / float(len(models))
        target = tf.one_hot(grade_of(p), NUM_CLASSES, dtype=tf.float32)
        cams = []
        for model, f in zip(models, features, strict=True):
            original = f[:n]  # Grad-CAM on the un-flipped view only
            with tf.GradientTape() as tape:
                tape.watch(original)
                score = tf.reduce_sum(head_forward(model, original) * target, axis=1)
            grads = tape.gradient(score, original)
            channel_weights = tf.reduce_mean(grads, axis=[1, 2])
            cams.append(tf.nn.relu(tf.einsum("nhwc,nc->nhw", original, channel_weights)))
        cam = tf.add_n(cams) / float(len(cams))
        cam = cam / (tf.reduce_max(cam, axis=[1, 2], keepdims=True) + 1e-12)
        return {  # same probabilities/grade/referable as serving_default, plus the heatmap
            PROBABILITIES: p,
            GRADE: grade_of(p),
            REFERABLE_PROBABILITY: tf.reduce_sum(p[:, REFERABLE_MIN_GRADE:], axis=1),
            HEATMAP: tf.clip_by_value(cam, *HEATMAP_RANGE),
        }

    def model_card(unused: Any) -> dict[str, Any]:
        return {CARD_OUTPUT: tf.fill(tf.shape(unused)[:1], tf.constant(card_json))}

    module = tf.Module()
    module.model_variables = [v.value for model in models for v in model.weights]
    signatures = {
        SERVING_SIGNATURE: tf.function(
            serve, input_signature=spec, autograph=False
        ).get_concrete_function(),
        EXPLAIN_SIGNATURE: tf.function(
            explain, input_signature=spec, autograph=False
        ).get_concrete_function(),
        CARD_SIGNATURE: tf.function(
            model_card, input_signature=[tf_spec(CARD_INPUT_SPEC, CARD_INPUT)]
        ).get_concrete_function(),
    }
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(module, path, signatures=signatures, options=options)
