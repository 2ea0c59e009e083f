"""Losses, class weights and the ordinal head (small tensors, TF backend, eager)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model.config import LossConfig
from model.losses import OrdinalLoss, class_weights, cumulative, make_loss
from model.network import OrdinalHead, tta_views, warmup_cosine


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_cumulative_of_one_hot():
    y = np.eye(5, dtype="float32")[[0, 2, 4]]
    assert _np(cumulative(y)).tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]


def test_ordinal_loss_prefers_near_misses():
    y = np.eye(5, dtype="float32")[[3]]
    loss = OrdinalLoss()
    exact = float(_np(loss(y, np.array([[0.01, 0.01, 0.01, 0.96, 0.01]], "float32"))))
    near = float(_np(loss(y, np.array([[0.01, 0.01, 0.96, 0.01, 0.01]], "float32"))))
    far = float(_np(loss(y, np.array([[0.96, 0.01, 0.01, 0.01, 0.01]], "float32"))))
    assert exact < near < far


@pytest.mark.parametrize("name", ["ce", "focal", "ordinal", "ce_ordinal"])
def test_losses_are_finite_and_ordered(name):
    loss = make_loss(LossConfig(name=name, label_smoothing=0.1))
    y = np.eye(5, dtype="float32")[[1, 4]]
    good = np.where(y > 0, 0.9, 0.025).astype("float32")
    bad = np.roll(good, 2, axis=1)
    lg, lb = float(_np(loss(y, good))), float(_np(loss(y, bad)))
    assert np.isfinite(lg) and np.isfinite(lb) and lg < lb


def test_class_weights_mean_one_over_images():
    grades = np.array([0] * 80 + [1] * 10 + [2] * 5 + [3] * 4 + [4] * 1)
    for mode in ("balanced", "sqrt"):
        w = class_weights(grades, mode)
        assert np.mean(w[grades]) == pytest.approx(1.0, rel=1e-5)
        assert w[4] > w[0]
    assert class_weights(grades, "none").tolist() == [1.0] * 5


def test_ordinal_head_gives_valid_probabilities():
    head = OrdinalHead()
    x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32") * 3
    p = _np(head(x))
    assert p.shape == (16, 5)
    assert (p >= 0).all()
    assert np.allclose(p.sum(1), 1.0, atol=1e-5)
    s = _np(head.cumulative(x))
    assert (np.diff(s, axis=1) <= 1e-7).all()  # P(y>k) non-increasing in k


def test_tta_views_numpy():
    x = np.arange(2 * 3 * 3 * 3).reshape(2, 3, 3, 3)
    views = tta_views(x, "flip4")
    assert len(views) == 4
    assert np.array_equal(views[1], x[:, :, ::-1])
    assert np.array_equal(views[3], x[:, ::-1, ::-1])
    assert len(tta_views(x, "none")) == 1


def test_warmup_cosine_schedule():
    schedule = warmup_cosine(1e-3, total_steps=100, warmup_steps=10, min_ratio=0.01)
    values = [float(_np(schedule(step))) for step in (0, 5, 10, 55, 100)]
    assert values[0] == pytest.approx(0.0)
    assert values[1] == pytest.approx(5e-4, rel=1e-3)
    assert values[2] == pytest.approx(1e-3, rel=1e-3)
    assert values[2] > values[3] > values[4]
    assert values[4] == pytest.approx(1e-5, rel=1e-2)
