"""The naive baseline (bench/naive_service.py) combines fold models the way the exported
SavedModel does: mean over TTA views, then over folds (``model.batches.predict_probs``, the
reference ``model.export`` verifies the SavedModel against), then the decision rule."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from bench.naive_service import NaiveGrader, naive_model_input
from fundus.config import PreprocessConfig
from model.batches import predict_probs
from model.decision import predict_grade
from synthetic import encode_jpeg, synthesize_fundus

SIZE = 16


def flip_sensitive_model(seed: int) -> keras.Model:
    """A small dense model over the raw pixels: a horizontal flip changes its output."""
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(keras.layers.Flatten()(inputs))
    init = keras.initializers.RandomNormal(stddev=0.1, seed=seed)
    outputs = keras.layers.Dense(5, activation="softmax", kernel_initializer=init)(x)
    return keras.Model(inputs, outputs)


def grader(tta: str = "hflip") -> NaiveGrader:
    models = [flip_sensitive_model(0), flip_sensitive_model(1)]
    return NaiveGrader(models, PreprocessConfig(size=SIZE), tta, "thresholds", [0.5, 1.2, 2, 3])


def test_probabilities_follow_the_export_rule() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    naive = grader()
    probs = naive.probabilities(images.astype(np.float32))
    reference = predict_probs(naive.models, images, np.arange(3), 3, "hflip")
    np.testing.assert_allclose(probs, reference, atol=1e-6)
    without_tta = dataclasses.replace(naive, tta="none").probabilities(images.astype(np.float32))
    assert np.abs(without_tta - probs).max() > 1e-3  # the models see the flip


def test_grade_of_an_upload_uses_the_run_decision_rule() -> None:
    naive = grader()
    jpeg = encode_jpeg(synthesize_fundus(2, width=1200, height=900, seed=3))
    image = naive_model_input(jpeg, naive.preprocess)
    assert image.shape == (SIZE, SIZE, 3)
    reference = predict_probs(naive.models, image[None], np.arange(1), 1, "hflip")
    answer = naive.grade(jpeg)
    np.testing.assert_allclose(answer["probabilities"], reference[0], atol=1e-6)
    assert answer["grade"] == predict_grade(reference, "thresholds", [0.5, 1.2, 2, 3])[0]
    assert answer["referable_probability"] == pytest.approx(reference[0, 2:].sum(), abs=1e-6)
